// The page's line to the server: the OSCQuery namespace over HTTP, then one WebSocket carrying
// binary OSC both ways. Reconnects by itself, with a growing delay, whenever the socket drops.

import { decode, encode } from "./osc.js";

const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 8000;

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
    this.sent = 0;
  }

  start() {
    this.connect();
    // A phone back from sleep: try at once rather than wait out the delay.
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && !this.isOpen()) this.retryNow();
    });
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
    this.hooks.state("connecting");
    let namespace;
    let items;
    try {
      // Read again on each connection: a restarted server may run other engines or layers.
      const [ns, it] = await Promise.all([fetch("/", { cache: "no-store" }), fetch("/play/items.json", { cache: "no-store" })]);
      if (!ns.ok) throw new Error(`namespace: HTTP ${ns.status}`);
      namespace = await ns.json();
      items = it.ok ? await it.json() : {};
    } catch (e) {
      this.retryLater();
      return;
    }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/`);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      this.delay = FIRST_DELAY_MS;
      this.namespace = namespace;
      this.hooks.ready(namespace, items);
      this.hooks.state("open");
    };
    ws.onmessage = (ev) => {
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
      if (this.ws !== ws) return;
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
    return true;
  }
}
