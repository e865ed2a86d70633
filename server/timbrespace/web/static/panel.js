// The controls around the pad: engine switch, layer choice, source/target pickers searchable by
// name, the alpha slider, the voices meter, the players list and the messages line.

import { colour } from "./pad.js";

function button(text, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

export class Panel {
  /**
   * @param {object} send callbacks: engine(name), layer(n), source(name), target(name), alpha(v)
   */
  constructor(send) {
    this.send = send;
    this.$ = (id) => document.getElementById(id);
    this.presets = [];
    this.instruments = [];
    this.engine = null;
    this.layer = 0;
    this.players = new Map(); // id -> {name, layer}
    this.me = null; // this page's player id (/hello.reply)
    this.toastTimer = null;
    this.alphaPending = null;
    for (const which of ["source", "target"]) {
      const input = this.$(which);
      input.addEventListener("change", () => {
        const v = input.value.trim();
        if (v) this.send[which](v);
        input.blur();
      });
    }
    const alpha = this.$("alpha");
    alpha.addEventListener("input", () => {
      // One send a frame at most, the newest value: a drag is not a flood.
      const first = this.alphaPending === null;
      this.alphaPending = Number(alpha.value);
      if (first) {
        requestAnimationFrame(() => {
          this.send.alpha(this.alphaPending);
          this.alphaPending = null;
        });
      }
    });
  }

  /** Build the controls the server's namespace offers. */
  setup(engines, layers, alphaRange) {
    this.$("engines").replaceChildren(...engines.map((name) => {
      const b = button(name, () => {
        this.setEngine(name); // first: what the send redraws depends on it
        this.send.engine(name);
      });
      b.dataset.engine = name;
      return b;
    }));
    this.$("engines").hidden = engines.length < 2;
    this.$("layers").replaceChildren(...Array.from({ length: layers }, (_, i) => {
      const b = button(String(i), () => this.send.layer(i));
      b.dataset.layer = String(i);
      b.title = `layer ${i}`;
      return b;
    }));
    this.$("layers").hidden = layers < 2;
    const alpha = this.$("alpha");
    alpha.min = String(alphaRange.MIN);
    alpha.max = String(alphaRange.MAX);
    this.setLayer(this.layer);
    if (this.engine) this.setEngine(this.engine);
  }

  setEngine(name) {
    this.engine = name;
    for (const b of this.$("engines").children) b.classList.toggle("on", b.dataset.engine === name);
    this.fillItems();
  }

  setLayer(n) {
    this.layer = n;
    for (const b of this.$("layers").children) b.classList.toggle("on", Number(b.dataset.layer) === n);
  }

  setPresets(names) {
    this.presets = names;
    this.fillItems();
  }

  setInstruments(names) {
    this.instruments = names;
    this.fillItems();
  }

  /** The pickers offer what the heard engine takes: presets, or the timbre engine's instruments. */
  fillItems() {
    const names = this.engine === "timbre" ? this.instruments : this.presets;
    const list = this.$("items");
    if (list.dataset.engine === this.engine && list.childElementCount === names.length) return;
    list.dataset.engine = this.engine || "";
    list.replaceChildren(...names.map((n) => {
      const o = document.createElement("option");
      o.value = n;
      return o;
    }));
  }

  setPick(which, name) {
    const input = this.$(which);
    if (document.activeElement !== input) input.value = name;
  }

  setAlpha(v) {
    const alpha = this.$("alpha");
    if (this.alphaPending === null) alpha.value = String(v);
  }

  // The bar is the output's peak (-60 to 0 dBFS), the text the voices sounding.
  setVoices(n, levelDb) {
    const fill = Math.min(1, Math.max(0, (levelDb + 60) / 60));
    this.$("meter-fill").style.width = `${Math.round(fill * 100)}%`;
    const db = levelDb > -119 ? ` · ${Math.round(levelDb)} dB` : "";
    this.$("meter-text").textContent = `${n} voice${n === 1 ? "" : "s"}${db}`;
    this.$("meter").dataset.voices = String(n);
    this.$("meter").dataset.level = String(levelDb);
  }

  setConnection(state) {
    const text = { connecting: "connecting…", open: "connected", down: "reconnecting…" }[state] || state;
    this.$("conn").textContent = text;
    document.body.dataset.link = state;
  }

  player(what, id, name, layer) {
    if (what === "left") this.players.delete(id);
    else this.players.set(id, { name, layer });
    this.$("players").replaceChildren(...[...this.players].map(([pid, p]) => {
      const li = document.createElement("li");
      li.textContent = `${p.name}${pid === this.me ? " (you)" : ""} · layer ${p.layer}`;
      li.style.borderColor = colour(pid);
      return li;
    }));
  }

  clearPlayers() {
    this.players.clear();
    this.$("players").replaceChildren();
  }

  toast(text) {
    const t = this.$("toast");
    t.textContent = text;
    t.classList.add("show");
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => t.classList.remove("show"), 4000);
  }
}
