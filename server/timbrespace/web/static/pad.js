// The 2-D map as a multi-touch pad: every finger (or the mouse) is a voice of its own at its own
// point (/touch); the layer's point, every other player's cursor and fingers are drawn live over a grid.

const GRID = 8;
const FINGER_PX = 22;
const SEND_DELAYS = 4096; // kept for `timbrespace bench`
const OTHER_FINGER_PX = 6;
/** Fingers one player holds down at most (the server's bound): more are not played. */
export const MAX_FINGERS = 10;

function clamp01(v) {
  return Math.min(1, Math.max(0, v));
}

/** A player's colour, steady for its id. */
export function colour(id) {
  return `hsl(${(id * 137.508) % 360} 75% 60%)`;
}

/** An instrument's colour on the map: evenly round the wheel, darker than the players' own. */
function regionColour(i, n, alpha) {
  return `hsl(${(360 * i) / n} 55% 45% / ${alpha})`;
}

/** The regions as a canvas of one pixel a cell (the pad scales it up, smoothed): each cell in
 * its instrument's colour, fainter where the model is less sure (toward blends). */
function regionImage({ index, posterior }) {
  const rows = index.length;
  const cols = index[0].length;
  const n = Math.max(...index.map((r) => Math.max(...r))) + 1;
  const img = document.createElement("canvas");
  img.width = cols;
  img.height = rows;
  const c = img.getContext("2d");
  for (let j = 0; j < rows; j++) {
    for (let i = 0; i < cols; i++) {
      c.fillStyle = regionColour(index[j][i], n, (0.45 * posterior[j][i]).toFixed(3));
      c.fillRect(i, rows - 1 - j, 1, 1); // row 0 is y = 0, at the bottom
    }
  }
  return img;
}

export class Pad {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {(kind: "down" | "move" | "up", finger: number, x: number, y: number) => void} onTouch
   *   called when a finger (numbered 0 .. MAX_FINGERS - 1 while it is down) comes down, moves or
   *   lifts, with its point, both in [0, 1], y up (the browser already delivers moves once a frame
   *   at most)
   */
  constructor(canvas, onTouch) {
    this.canvas = canvas;
    this.onTouch = onTouch;
    this.fingers = new Map(); // pointerId -> {id, x, y}: this page's fingers down
    this.cursors = new Map(); // player id -> {name, x, y}
    this.others = new Map(); // "player id/finger" -> {player, x, y}: the other players' fingers
    this.point = null; // the layer's sounding point, as fed back
    this.dots = []; // the picture behind: the presets' places on the patch map, [x, y] each
    this.labels = []; // named places: the timbre engine's instruments, {name, x, y} each
    this.regions = null; // the learned map's instrument regions shown now, a small canvas
    this.regionsFrom = null; // the regions it was drawn from, and that drawing
    this.regionsImage = null;
    this.dirty = true;
    this.moves = 0;
    this.sendDelays = []; // milliseconds from a finger's move to its send, the last SEND_DELAYS
    for (const type of ["pointerdown", "pointermove", "pointerup", "pointercancel", "lostpointercapture"]) {
      canvas.addEventListener(type, (ev) => this.pointer(ev));
    }
    new ResizeObserver(() => this.resize()).observe(canvas);
    this.resize();
    this.frame();
  }

  resize() {
    const r = this.canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.max(1, Math.round(r.width * dpr));
    this.canvas.height = Math.max(1, Math.round(r.height * dpr));
    this.dirty = true;
  }

  /** (x, y) in [0, 1], y up, of a pointer event. */
  where(ev) {
    const r = this.canvas.getBoundingClientRect();
    return { x: clamp01((ev.clientX - r.left) / r.width), y: clamp01(1 - (ev.clientY - r.top) / r.height) };
  }

  /** The lowest finger number no finger down holds, or -1 when a hand's worth are down. */
  freeFinger() {
    const used = new Set([...this.fingers.values()].map((f) => f.id));
    for (let id = 0; id < MAX_FINGERS; id++) if (!used.has(id)) return id;
    return -1;
  }

  pointer(ev) {
    let kind = "move";
    if (ev.type === "pointerdown") {
      ev.preventDefault();
      const id = this.freeFinger();
      if (id < 0) return; // past a hand's worth: not played
      this.canvas.setPointerCapture(ev.pointerId);
      this.fingers.set(ev.pointerId, { id, ...this.where(ev) });
      kind = "down";
    } else if (ev.type === "pointermove") {
      const f = this.fingers.get(ev.pointerId);
      if (!f) return; // a mouse hovering, no button down
      Object.assign(f, this.where(ev));
    } else {
      const f = this.fingers.get(ev.pointerId); // lostpointercapture follows pointerup: once only
      if (!f) return;
      this.fingers.delete(ev.pointerId);
      this.dirty = true;
      this.onTouch("up", f.id, f.x, f.y);
      return;
    }
    // Sent at once, not at the next frame: pointer moves already come once a frame at most, and
    // waiting for the frame would add up to a frame of latency.
    const p = this.fingers.get(ev.pointerId);
    this.moves++;
    this.onTouch(kind, p.id, p.x, p.y);
    if (this.sendDelays.length >= SEND_DELAYS) this.sendDelays.shift();
    this.sendDelays.push(performance.now() - ev.timeStamp);
    this.dirty = true;
  }

  setPoint(x, y) {
    this.point = { x, y };
    this.dirty = true;
  }

  setCursor(id, name, x, y) {
    this.cursors.set(id, { name, x, y });
    this.dirty = true;
  }

  dropCursor(id) {
    this.cursors.delete(id);
    this.dirty = true;
  }

  clearCursors() {
    this.cursors.clear();
    this.others.clear();
    this.dirty = true;
  }

  /** Another player's finger `finger`: down at (x, y), or lifted. */
  setFinger(player, finger, x, y, down) {
    const key = `${player}/${finger}`;
    if (down) this.others.set(key, { player, x, y });
    else this.others.delete(key);
    this.dirty = true;
  }

  /** Every finger of `player` lifted (it left, or plays another layer). */
  dropFingers(player) {
    for (const [key, f] of this.others) if (f.player === player) this.others.delete(key);
    this.dirty = true;
  }

  /** Lift every finger of this page (the page is put away). */
  liftAll() {
    for (const f of this.fingers.values()) this.onTouch("up", f.id, f.x, f.y);
    this.fingers.clear();
    this.dirty = true;
  }

  /** What the map shows under the fingers: dots (the presets), named places (instruments) and
   * regions ({index, posterior}: rows of cells from y = 0 up, the instrument the model hears most
   * in each and how surely; null for none). */
  setBackdrop(dots, labels, regions = null) {
    this.dots = dots;
    this.labels = labels;
    if (regions !== this.regionsFrom) { // drawn once for each set of regions the server gives
      this.regionsFrom = regions;
      this.regionsImage = regions && regions.index.length ? regionImage(regions) : null;
    }
    this.regions = regions ? this.regionsImage : null;
    this.dirty = true;
  }

  frame() {
    if (this.dirty) {
      this.dirty = false;
      this.draw();
    }
    requestAnimationFrame(() => this.frame());
  }

  draw() {
    const c = this.canvas.getContext("2d");
    const w = this.canvas.width;
    const h = this.canvas.height;
    const dpr = window.devicePixelRatio || 1;
    const px = (x) => x * w;
    const py = (y) => (1 - y) * h;
    c.clearRect(0, 0, w, h);
    if (this.regions) {
      c.imageSmoothingEnabled = true;
      c.drawImage(this.regions, 0, 0, w, h);
    }
    c.strokeStyle = "rgba(255,255,255,0.12)";
    c.lineWidth = dpr;
    c.beginPath();
    for (let i = 1; i < GRID; i++) {
      c.moveTo(px(i / GRID), 0);
      c.lineTo(px(i / GRID), h);
      c.moveTo(0, py(i / GRID));
      c.lineTo(w, py(i / GRID));
    }
    c.stroke();
    c.fillStyle = "rgba(140,180,255,0.35)";
    const dot = 2 * dpr;
    for (const [x, y] of this.dots) c.fillRect(px(x) - dot / 2, py(y) - dot / 2, dot, dot);
    c.font = `${12 * dpr}px system-ui, sans-serif`;
    c.fillStyle = "rgba(255,255,255,0.6)";
    const m = 6 * dpr;
    for (const l of this.labels) {
      // Kept inside the pad: a corner's name reads inward from its corner.
      c.textAlign = l.x < 0.25 ? "left" : l.x > 0.75 ? "right" : "center";
      c.textBaseline = l.y < 0.25 ? "bottom" : l.y > 0.75 ? "top" : "middle";
      c.fillText(l.name, Math.min(w - m, Math.max(m, px(l.x))), Math.min(h - m, Math.max(m, py(l.y))));
    }
    c.textAlign = "left";
    c.textBaseline = "middle";
    for (const [id, cur] of this.cursors) {
      c.fillStyle = colour(id);
      c.beginPath();
      c.arc(px(cur.x), py(cur.y), 9 * dpr, 0, 2 * Math.PI);
      c.fill();
      c.fillText(cur.name, px(cur.x) + 13 * dpr, py(cur.y));
    }
    for (const f of this.others.values()) {
      c.fillStyle = colour(f.player);
      c.beginPath();
      c.arc(px(f.x), py(f.y), OTHER_FINGER_PX * dpr, 0, 2 * Math.PI);
      c.fill();
    }
    if (this.point) {
      c.strokeStyle = "#fff";
      c.lineWidth = 2 * dpr;
      c.beginPath();
      c.arc(px(this.point.x), py(this.point.y), 14 * dpr, 0, 2 * Math.PI);
      c.stroke();
    }
    c.fillStyle = "rgba(255,200,80,0.85)";
    for (const f of this.fingers.values()) {
      c.beginPath();
      c.arc(px(f.x), py(f.y), FINGER_PX * dpr, 0, 2 * Math.PI);
      c.fill();
    }
  }
}
