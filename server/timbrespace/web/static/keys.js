// A multi-touch keyboard: each finger holds one key; sliding a finger to another key releases the
// first and sounds the next. Velocity from where the key is struck: lower on the key is louder.

const WHITE = [0, 2, 4, 5, 7, 9, 11]; // semitones of the white keys in an octave
const NAMES = ["C", "D", "E", "F", "G", "A", "B"];
const MIN_WHITE_PX = 45; // 44 px and the border
const HAS_BLACK = [true, true, false, true, true, true, false]; // a black key to the right

/** The pitch of the white key `w` counted from MIDI note 0 (C-1). */
function whitePitch(w) {
  return 12 * Math.floor(w / 7) + WHITE[w % 7];
}

export class Keyboard {
  /**
   * @param {HTMLElement} box the keyboard's container
   * @param {(pitch: number, velocity: number) => void} play a note-on (velocity > 0) or off (0)
   */
  constructor(box, play) {
    this.box = box;
    this.play = play;
    this.low = 35; // the leftmost white key, counted in white keys from C-1: 35 is C4 (MIDI 60)
    this.whites = 7; // white keys shown
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

  /** Move by an octave, or by a screenful where less than an octave fits (a phone held upright). */
  shift(direction) {
    const next = this.low + direction * Math.min(7, this.whites);
    if (whitePitch(next) >= this.range.MIN && whitePitch(next) <= this.range.MAX) {
      this.releaseAll();
      this.low = next;
      this.build();
    }
  }

  /** Lay out as many white keys as fit at 44 px or more. */
  build() {
    const width = this.box.clientWidth || 320;
    this.whites = Math.max(1, Math.floor(width / MIN_WHITE_PX));
    const keyW = 100 / this.whites;
    this.box.replaceChildren();
    for (let i = 0; i < this.whites; i++) {
      const w = this.low + i;
      const pitch = whitePitch(w);
      if (pitch > this.range.MAX) break;
      const k = this.key(pitch, "white", i * keyW, keyW);
      if (w % 7 === 0 || i === 0) k.textContent = `${NAMES[w % 7]}${Math.floor(w / 7) - 1}`;
      this.box.append(k);
      if (HAS_BLACK[w % 7] && i < this.whites - 1 && pitch + 1 <= this.range.MAX) {
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
