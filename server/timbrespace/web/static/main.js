// The /play page: wires the pad, the keyboard and the controls to the server through the link,
// and applies what the server feeds back (its state, the other players, their cursors).

import { Keyboard } from "./keys.js";
import { argRange, findNode, Link } from "./link.js";
import { Pad } from "./pad.js";
import { Panel } from "./panel.js";

const STATUS_EVERY_MS = 500;
const LIST_PAGE = 64;

/** This tab's player name, kept across reloads so the server gives back the same id (and the
 * notes it held); per tab, since two tabs saying one name would be taken for one player. */
function playerName() {
  const key = "timbrespace.name";
  let name = null;
  try {
    name = sessionStorage.getItem(key);
  } catch (e) { /* storage off: a new name each visit */ }
  if (!name) {
    // 24 random bits: two of a room's tablets hardly ever draw the same name.
    const hex = Array.from(crypto.getRandomValues(new Uint8Array(3)), (b) => b.toString(16).padStart(2, "0"));
    name = `web ${hex.join("")}`;
    try {
      sessionStorage.setItem(key, name);
    } catch (e) { /* as above */ }
  }
  return name;
}

const name = playerName();
let latent = [{ MIN: 0, MAX: 1 }, { MIN: 0, MAX: 1 }];
let presets = [];
let items = { instruments: [], instrument_points: [], instrument_regions: null, preset_points: [] };
let mapKind = "corners";
let corners = null;
const CORNERS = [[0, 0], [1, 0], [0, 1], [1, 1]]; // where /corners a b c d sit

/** The picture behind the pad, as the engine heard and its map say: the presets' places (patch),
 * the four corner instruments, or each instrument's place and region on the learned map (timbre). */
function showBackdrop() {
  if (panel.engine !== "timbre") {
    pad.setBackdrop(items.preset_points || [], []);
  } else if (mapKind === "corners") {
    pad.setBackdrop([], corners ? corners.map((name, i) => ({ name, x: CORNERS[i][0], y: CORNERS[i][1] })) : []);
  } else {
    const at = items.instrument_points || [];
    pad.setBackdrop([], at.map(([x, y], i) => ({ name: items.instruments[i], x, y })), items.instrument_regions);
  }
}

const scale = (v, r) => r.MIN + v * (r.MAX - r.MIN);
const unscale = (v, r) => (r.MAX > r.MIN ? (v - r.MIN) / (r.MAX - r.MIN) : 0);

const link = new Link({ ready, message, state: (s) => panel.setConnection(s) });

/** What a finger on the pad plays: the key struck last on the keyboard (middle C before any). */
let padPitch = 60;
const PAD_VELOCITY = 100;

// Each finger a voice (/touch): under the timbre engine at its own point; under the patch engine
// (one patch per layer) the server also moves the layer's point with it.
const pad = new Pad(document.getElementById("pad"), (kind, finger, x, y) => {
  if (kind === "up") {
    link.send("/touch/off", [finger]);
    return;
  }
  if (panel.engine !== "timbre") pad.setPoint(x, y); // the server does not echo a sender's own moves
  const at = [scale(x, latent[0]), scale(y, latent[1])];
  link.send("/touch", kind === "down" ? [finger, ...at, padPitch, PAD_VELOCITY] : [finger, ...at]);
});

const keys = new Keyboard(document.getElementById("keys"), (pitch, velocity) => {
  if (velocity > 0) padPitch = pitch;
  link.send("/note", [pitch, velocity]);
});
document.getElementById("oct-down").addEventListener("click", () => keys.shift(-1));
document.getElementById("oct-up").addEventListener("click", () => keys.shift(1));

const panel = new Panel({
  engine: (n) => {
    link.send("/engine", [n]);
    showBackdrop();
  },
  layer: (n) => link.send("/layer", [n]),
  source: (n) => link.send("/source", [n]),
  target: (n) => link.send("/target", [n]),
  alpha: (v) => link.send("/alpha", [v]),
});

/** The socket is open to a server whose namespace is `ns`: build the controls it offers and join. */
function ready(ns, found) {
  items = found;
  latent = [0, 1].map((i) => argRange(ns, "/latent", i, { MIN: 0, MAX: 1 }));
  const engines = argRange(ns, "/engine", 0, { VALS: [] }).VALS || [];
  const layerNode = findNode(ns, "/layer");
  const layers = layerNode && layerNode.CONTENTS ? Object.keys(layerNode.CONTENTS).length : 1;
  panel.setup(engines, layers, argRange(ns, "/alpha", 0, { MIN: 0, MAX: 1 }));
  keys.setRanges(argRange(ns, "/note", 0, { MIN: 0, MAX: 127 }), argRange(ns, "/note", 1, { MIN: 0, MAX: 127 }));
  panel.setInstruments(items.instruments || []);
  showBackdrop();
  pad.clearCursors();
  panel.clearPlayers();
  link.send("/hello", [name]);
  if (panel.layer >= layers) panel.setLayer(0);
  if (panel.layer !== 0) link.send("/layer", [panel.layer]);
  link.send("/notify", [1]); // the whole feedback, other players' cursors included
  if (findNode(ns, "/patch/list")) {
    presets = [];
    link.send("/patch/list", [0, LIST_PAGE]);
  }
}

function message({ address, args }) {
  switch (address) {
    case "/latent":
      pad.setPoint(unscale(args[0], latent[0]), unscale(args[1], latent[1]));
      break;
    case "/cursor": {
      const [id, who, x, y] = args;
      pad.setCursor(id, who, unscale(x, latent[0]), unscale(y, latent[1]));
      break;
    }
    case "/cursor/touch": {
      const [id, , finger, x, y, down] = args;
      pad.setFinger(id, finger, unscale(x, latent[0]), unscale(y, latent[1]), down !== 0);
      break;
    }
    case "/clients": {
      const [what, id, who, layer] = args;
      panel.player(what, id, who, layer);
      if (what === "left" || layer !== panel.layer) {
        pad.dropCursor(id);
        pad.dropFingers(id);
      }
      break;
    }
    case "/hello.reply":
      panel.me = args[0];
      break;
    case "/engine":
      panel.setEngine(args[0]);
      showBackdrop();
      break;
    case "/layer.reply":
      if (args[0] !== panel.layer) pad.clearCursors(); // the new layer's arrive with its state
      panel.setLayer(args[0]);
      break;
    case "/source":
    case "/target":
      panel.setPick(address.slice(1), String(args[0]));
      break;
    case "/alpha":
      panel.setAlpha(args[0]);
      break;
    case "/map":
      mapKind = args[0];
      showBackdrop();
      break;
    case "/corners":
      corners = args.map(String);
      showBackdrop();
      break;
    case "/patch/list.reply": {
      const [total, start, ...names] = args;
      if (start !== presets.length) break; // a page of an older listing
      presets = presets.concat(names);
      if (names.length > 0 && presets.length < total) link.send("/patch/list", [presets.length, LIST_PAGE]);
      else panel.setPresets(presets);
      break;
    }
    case "/status.reply": {
      const i = args.indexOf("voices");
      const l = args.indexOf("level_db");
      if (i >= 0) panel.setVoices(args[i + 1], l >= 0 ? args[l + 1] : -120);
      break;
    }
    case "/fail":
      panel.toast(`${args[0] || "message"}: ${args[1]}`);
      break;
    default:
      break;
  }
}

setInterval(() => {
  if (document.visibilityState === "visible") link.send("/status");
}, STATUS_EVERY_MS);

// A long press on the pad or a key is playing, not asking for a menu.
for (const id of ["pad", "keys"]) {
  document.getElementById(id).addEventListener("contextmenu", (ev) => ev.preventDefault());
}

// Lifting the page away (another tab, the phone locked) must not leave notes hanging.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden") {
    keys.releaseAll();
    pad.liftAll();
  }
});

window.play = { link, pad, keys, panel, name };
link.start();
