// A multi-touch keyboard: each finger holds one key; sliding a finger to another key releases the
// first and sounds the next. Velocity from where the key is struck: lower on the key is louder.

const WHITE = [0, 2, 4, 5, 7, 9, 11]; // semitones of the white keys in an octave
const MIN_WHITE_PX = 44;

export class Keyboard {
  /**
   * @param {HTMLElement} box the keyboard's container
   * @param {(pitch: number, velocity: number) => void} play a note-on (velocity > 0) or off (0)
   */
  constructor(box, play) {
    this.box = box;
    this.play = play;
    this.low = 60; // the leftmost white key: C4
    this.range = { MIN: 0, MAX: 127 }; // pitches taken (the namespace's /note RANGE)
    this.velRange = { MIN: 1, MAX: 127 };
    this.held = new Map(); // pointerId -> pitch
    for (const type of ["pointerdown", "pointermove", "pointerup", "pointercancel", "lostpointercapture"]) {
      box.addEventListener(type, (ev) => this.pointer(ev));
    }
    new ResizeObserver(() => this.build()).observe(box);
  }

  setRanges(pitch, velocity) {
    this.range = pitch;
    this.velRange = { MIN: Math.max(1, velocity.MIN), MAX: velocity.MAX };
    this.build();
  }

  shift(octaves) {
    const next = this.low + 12 * octaves;
    if (next >= this.range.MIN && next + 12 <= this.range.MAX + 1) {
      this.releaseAll();
      this.low = next;
      this.build();
    }
  }

  /** Lay out as many white keys as fit at 44 px or more (one octave at least). */
  build() {
    const width = this.box.clientWidth || 320;
    const whites = Math.max(7, Math.floor(width / (MIN_WHITE_PX + 4)));
    const keyW = 100 / whites;
    this.box.replaceChildren();
    let pitch = this.low;
    for (let i = 0; i < whites; i++) {
      const octave = Math.floor(i / 7);
      const semis = WHITE[i % 7];
      pitch = this.low + 12 * octave + semis;
      if (pitch > this.range.MAX) break;
      this.box.append(this.key(pitch, "white", i * keyW, keyW));
      const hasBlack = [0, 2, 5, 7, 9].includes(semis);
      if (hasBlack && i < whites - 1 && pitch + 1 <= this.range.MAX) {
        this.box.append(this.key(pitch + 1, "black", (i + 0.65) * keyW, keyW * 0.7));
      }
    }
  }

  key(pitch, kind, leftPct, widthPct) {
    const k = document.createElement("div");
    k.className = `key ${kind}`;
    k.dataset.pitch = String(pitch);
    k.style.left = `${leftPct}%`;
    k.style.width = `${widthPct}%`;
    if (pitch % 12 === 0 && kind === "white") k.textContent = `C${pitch / 12 - 1}`;
    return k;
  }

  /** The key under a point, and the velocity that point gives. */
  under(ev) {
    const el = document.elementFromPoint(ev.clientX, ev.clientY);
    const key = el && el.closest ? el.closest(".key") : null;
    if (!key || !this.box.contains(key)) return null;
    const r = key.getBoundingClientRect();
    const depth = Math.min(1, Math.max(0, (ev.clientY - r.top) / r.height));
    const { MIN, MAX } = this.velRange;
    const velocity = Math.round(MIN + (MAX - MIN) * (0.35 + 0.65 * depth));
    return { pitch: Number(key.dataset.pitch), velocity, key };
  }

  pointer(ev) {
    const id = ev.pointerId;
    if (ev.type === "pointerdown") {
      ev.preventDefault();
      this.box.setPointerCapture(id);
      const hit = this.under(ev);
      if (hit) this.press(id, hit);
    } else if (ev.type === "pointermove") {
      if (!this.held.has(id)) return;
      const hit = this.under(ev);
      if (hit && hit.pitch !== this.held.get(id)) {
        this.release(id);
        this.press(id, hit);
      }
    } else {
      this.release(id);
    }
  }

  press(id, hit) {
    this.held.set(id, hit.pitch);
    hit.key.classList.add("down");
    this.play(hit.pitch, hit.velocity);
  }

  release(id) {
    const pitch = this.held.get(id);
    if (pitch === undefined) return;
    this.held.delete(id);
    // Another finger may still hold the same key: it stays down then.
    if ([...this.held.values()].includes(pitch)) return;
    const key = this.box.querySelector(`.key[data-pitch="${pitch}"]`);
    if (key) key.classList.remove("down");
    this.play(pitch, 0);
  }

  releaseAll() {
    for (const id of [...this.held.keys()]) this.release(id);
  }
}
