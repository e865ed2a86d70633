// The page's line to the server: the OSCQuery namespace over HTTP, then one WebSocket carrying
// binary OSC both ways. Reconnects by itself, with a growing delay, whenever the socket drops.

import { decode, encode } from "./osc.js";

const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 4000; // a room of tablets retrying this often is still a trickle of requests
// A message sent and nothing heard since for this long: the network is gone though the socket
// has not noticed (a phone's Wi-Fi dropped, a server frozen). The page polls /status, so a live
// server always answers well within it.
const SILENT_MS = 5000;

/** A node of the namespace by its path ("/latent", "/patch/list"), or null. */
export function findNode(root, path) {
  let node = root;
  for (const part of path.split("/").filter(Boolean)) {
    node = node && node.CONTENTS ? node.CONTENTS[part] : undefined;
    if (!node) return null;
  }
  return node;
}

/** The i-th argument's {MIN, MAX} or {VALS} of the method at `path`, or `fallback`. */
export function argRange(root, path, i, fallback) {
  const node = findNode(root, path);
  const r = node && node.RANGE ? node.RANGE[i] : null;
  return r || fallback;
}

export class Link {
  /**
   * @param {object} hooks
   *   ready(namespace, items): the namespace (and /play/items.json) of the server just reached,
   *     called each time the socket opens, before any message;
   *   message({address, args}): each OSC message received;
   *   state(text): "connecting", "open" or "down" for the status light.
   */
  constructor(hooks) {
    this.hooks = hooks;
    this.ws = null;
    this.namespace = null;
    this.delay = FIRST_DELAY_MS;
    this.timer = null;
    this.connecting = false;
    this.waitingSince = null; // when the first message unanswered so far was sent
    this.sent = 0;
    this.dropped = 0; // sockets given up for silence
  }

  start() {
    this.connect();
    // A phone back from sleep: try at once rather than wait out the delay.
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && !this.isOpen() && !this.connecting) this.retryNow();
    });
    setInterval(() => this.watch(), 500);
  }

  /** Give up a socket that has gone silent: reconnect rather than play into nothing. */
  watch() {
    const live = this.ws !== null && this.ws.readyState <= WebSocket.OPEN; // connecting or open
    if (live && this.waitingSince !== null && performance.now() - this.waitingSince > SILENT_MS) {
      this.dropped++;
      const ws = this.ws;
      this.ws = null;
      this.connecting = false;
      ws.close();
      this.retryLater();
    }
  }

  isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  retryNow() {
    clearTimeout(this.timer);
    this.delay = FIRST_DELAY_MS;
    this.connect();
  }

  async connect() {
    this.timer = null;
    if (this.connecting) return;
    this.connecting = true;
    this.hooks.state("connecting");
    let namespace;
    let items;
    try {
      // Read again on each connection: a restarted server may run other engines or layers.
      // Bounded like the socket's silence: a request into a dead network would hang for minutes.
      const opts = { cache: "no-store", signal: AbortSignal.timeout(SILENT_MS) };
      const [ns, it] = await Promise.all([fetch("/", opts), fetch("/play/items.json", opts)]);
      if (!ns.ok) throw new Error(`namespace: HTTP ${ns.status}`);
      namespace = await ns.json();
      items = it.ok ? await it.json() : {};
    } catch (e) {
      this.connecting = false;
      this.retryLater();
      return;
    }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/`);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.waitingSince = performance.now(); // the opening handshake is watched like any request
    ws.onopen = () => {
      this.connecting = false;
      this.waitingSince = null;
      this.delay = FIRST_DELAY_MS;
      this.namespace = namespace;
      this.hooks.ready(namespace, items);
      this.hooks.state("open");
    };
    ws.onmessage = (ev) => {
      this.waitingSince = null;
      if (typeof ev.data === "string") return; // the page sends no LISTEN: only binary OSC comes
      let messages;
      try {
        messages = decode(ev.data);
      } catch (e) {
        console.warn("undecodable OSC frame:", e.message);
        return;
      }
      for (const m of messages) this.hooks.message(m);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return; // one given up already
      this.connecting = false;
      this.ws = null;
      this.retryLater();
    };
    ws.onerror = () => {}; // onclose follows and says it
  }

  retryLater() {
    this.hooks.state("down");
    if (this.timer !== null) return;
    // Jittered, so that a room of tablets does not knock on a restarted server all at once.
    const wait = this.delay * (0.75 + Math.random() * 0.5);
    this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
    this.timer = setTimeout(() => this.connect(), wait);
  }

  /**
   * Send one OSC message, typed as the namespace declares `address` (or `types` when given).
   * Returns false (and sends nothing) while the socket is down.
   */
  send(address, args = [], types = null) {
    if (!this.isOpen()) return false;
    let tags = types;
    if (tags === null) {
      const node = this.namespace ? findNode(this.namespace, address) : null;
      tags = node && node.TYPE ? node.TYPE.slice(0, args.length) : "";
    }
    this.ws.send(encode(address, tags, args));
    this.sent++;
    if (this.waitingSince === null) this.waitingSince = performance.now();
    return true;
  }
}
