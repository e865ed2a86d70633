// The 2-D map as a multi-touch pad: every finger (or the mouse) moves the point, the layer's
// point and every other player's cursor are drawn live over a grid.

const GRID = 8;
const FINGER_PX = 22;
const SEND_DELAYS = 4096; // kept for `timbrespace bench`

function clamp01(v) {
  return Math.min(1, Math.max(0, v));
}

/** A player's colour, steady for its id. */
export function colour(id) {
  return `hsl(${(id * 137.508) % 360} 75% 60%)`;
}

export class Pad {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {(x: number, y: number) => void} onMove called with a finger's point as it moves, both in
   *   [0, 1], y up (the browser already delivers moves once a frame at most)
   */
  constructor(canvas, onMove) {
    this.canvas = canvas;
    this.onMove = onMove;
    this.fingers = new Map(); // pointerId -> {x, y}
    this.cursors = new Map(); // player id -> {name, x, y}
    this.point = null; // the layer's sounding point, as fed back
    this.dots = []; // the picture behind: the presets' places on the patch map, [x, y] each
    this.labels = []; // named places: the timbre engine's instruments, {name, x, y} each
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

  pointer(ev) {
    if (ev.type === "pointerdown") {
      ev.preventDefault();
      this.canvas.setPointerCapture(ev.pointerId);
      this.fingers.set(ev.pointerId, this.where(ev));
    } else if (ev.type === "pointermove") {
      if (!this.fingers.has(ev.pointerId)) return; // a mouse hovering, no button down
      this.fingers.set(ev.pointerId, this.where(ev));
    } else {
      this.fingers.delete(ev.pointerId);
      this.dirty = true;
      return;
    }
    // Sent at once, not at the next frame: pointer moves already come once a frame at most, and
    // waiting for the frame would add up to a frame of latency.
    const p = this.fingers.get(ev.pointerId);
    this.moves++;
    this.onMove(p.x, p.y);
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
    this.dirty = true;
  }

  /** What the map shows under the fingers: dots (the presets) and named places (instruments). */
  setBackdrop(dots, labels) {
    this.dots = dots;
    this.labels = labels;
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
