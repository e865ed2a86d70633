// OSC 1.0 messages in and out of ArrayBuffers: what the WebSocket's binary frames carry.
// Types sent: i (int32), f (float32), s (string). Types read: i f s b h d t T F N I, bundles flattened.

const enc = new TextEncoder();
const dec = new TextDecoder();

function pad4(n) {
  return (n + 3) & ~3;
}

function stringBytes(s) {
  const raw = enc.encode(s);
  const out = new Uint8Array(pad4(raw.length + 1)); // NUL-terminated, zero-padded to 4 bytes
  out.set(raw);
  return out;
}

/**
 * One OSC message as bytes.
 * @param {string} address e.g. "/latent"
 * @param {string} types one tag per argument: "i", "f" or "s" (e.g. the namespace's TYPE)
 * @param {Array<number|string>} args
 * @returns {ArrayBuffer}
 */
export function encode(address, types, args) {
  if (types.length !== args.length) {
    throw new Error(`${address}: ${args.length} arguments for type tags "${types}"`);
  }
  const parts = [stringBytes(address), stringBytes("," + types)];
  for (let i = 0; i < types.length; i++) {
    const t = types[i];
    const v = args[i];
    if (t === "s") {
      parts.push(stringBytes(String(v)));
    } else if (t === "i" || t === "f") {
      const b = new Uint8Array(4);
      const view = new DataView(b.buffer);
      if (t === "i") view.setInt32(0, Math.round(Number(v)));
      else view.setFloat32(0, Number(v));
      parts.push(b);
    } else {
      throw new Error(`${address}: type tag "${t}" is not sent by this page`);
    }
  }
  const size = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out.buffer;
}

class Reader {
  constructor(view, start, end) {
    this.view = view;
    this.at = start;
    this.end = end;
  }

  need(n) {
    if (this.at + n > this.end) throw new Error("OSC packet ends early");
  }

  string() {
    const bytes = new Uint8Array(this.view.buffer, this.view.byteOffset + this.at, this.end - this.at);
    const nul = bytes.indexOf(0);
    if (nul < 0) throw new Error("OSC string without its NUL");
    const s = dec.decode(bytes.subarray(0, nul));
    this.at += pad4(nul + 1);
    return s;
  }

  int32() {
    this.need(4);
    const v = this.view.getInt32(this.at);
    this.at += 4;
    return v;
  }

  arg(t) {
    switch (t) {
      case "i": return this.int32();
      case "f": { this.need(4); const v = this.view.getFloat32(this.at); this.at += 4; return v; }
      case "d": { this.need(8); const v = this.view.getFloat64(this.at); this.at += 8; return v; }
      case "h": { this.need(8); const v = Number(this.view.getBigInt64(this.at)); this.at += 8; return v; }
      case "t": { this.need(8); this.at += 8; return null; }
      case "s": case "S": return this.string();
      case "b": { const n = this.int32(); this.need(n); const v = this.view.buffer.slice(
        this.view.byteOffset + this.at, this.view.byteOffset + this.at + n); this.at += pad4(n); return v; }
      case "T": return true;
      case "F": return false;
      case "N": return null;
      case "I": return Infinity;
      default: throw new Error(`OSC type tag "${t}" is not read by this page`);
    }
  }
}

function readPacket(view, start, end, out) {
  const r = new Reader(view, start, end);
  const address = r.string();
  if (address === "#bundle") {
    r.need(8);
    r.at += 8; // the time tag: feedback bundles are sent to be applied at once
    while (r.at < end) {
      const n = r.int32();
      r.need(n);
      readPacket(view, r.at, r.at + n, out);
      r.at += n;
    }
    return;
  }
  const tags = r.at < end ? r.string() : ",";
  const args = [];
  for (const t of tags.slice(1)) args.push(r.arg(t));
  out.push({ address, args });
}

/**
 * Every message in a packet, bundles flattened in order.
 * @param {ArrayBuffer} buffer
 * @returns {Array<{address: string, args: Array}>}
 */
export function decode(buffer) {
  const out = [];
  readPacket(new DataView(buffer), 0, buffer.byteLength, out);
  return out;
}
