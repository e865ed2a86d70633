"""``clients/touchosc/timbrespace.tosc``: a TouchOSC layout (zlib-compressed ``lexml`` XML).

A top bar (``/layer`` buttons L0 to L3, ``/engine`` buttons, panic, status and a label that shows
the ``/status.reply`` and ``/fail`` replies through a small Lua script) over a pager of two pages,
one per engine. Each page has an XY pad sending ``/latent``, an ``/alpha`` fader and a one-octave
keyboard of momentary buttons sending ``/note pitch velocity`` (velocity 0 on release). The patch
page adds rows of preset buttons for ``/source``, ``/target`` and ``/patch/load``; the timbre page
rows of instrument buttons for ``/source`` and ``/target``, ``/corners`` sets and faders for
``/z``. Ranges are the declared ones.

Following the server: the "join" button sends ``/hello`` and ``/notify 1``, and its script sends
``/notify 1`` again every :data:`RENEW_S` seconds (a UDP subscription expires). The XY pad, the
alpha fader and the /z faders *receive* the address they send (``<receive>1</receive>``; a /z
fader's constant index must match), so the layer's feedback moves them; their feedback flag stays
off, so a value set by the server is not sent back to it.
"""

from __future__ import annotations

import uuid
import zlib

from timbrespace.layouts._spec import (
    CORNER_SETS,
    INSTRUMENTS,
    KEYS,
    LAYERS,
    PLAYER,
    PRESETS,
    RENEW_S,
    VELOCITY,
    Z_DIMS,
    address,
    bounds,
)
from timbrespace.protocol.addresses import ENGINES, MAPS

#: The lexml version written; TouchOSC opens it and upgrades the file when it saves.
LEXML_VERSION = "3"
WIDTH, HEIGHT = 1024, 768
_NS = uuid.UUID("6f1f6f5e-7a1b-4d2c-9a57-2b1f0e7d3c11")

#: TouchOSC argument conversion for each declared kind (a preset button sends its name).
CONVERSION = {"int": "INTEGER", "float": "FLOAT", "str": "STRING", "ref": "STRING"}

STATUS_SCRIPT = """function onReceiveOSC(message, connections)
  local path, args = message[1], message[2]
  if path == '/status.reply' then
    local t = {}
    for i = 1, #args - 1, 2 do t[#t + 1] = tostring(args[i].value) .. ' ' .. tostring(args[i + 1].value) end
    self.values.text = table.concat(t, '   ')
  elseif path == '/fail' then
    self.values.text = 'fail ' .. tostring(args[1].value) .. ': ' .. tostring(args[2].value)
  end
end
"""


#: The join button's script: /notify 1 again every RENEW_S seconds once it was pressed.
RENEW_SCRIPT = f"""local due = nil
function onValueChanged(key)
  if key == 'x' and self.values.x == 1 then due = getMillis() + {RENEW_S * 1000:g} end
end
function update()
  if due ~= nil and getMillis() >= due then
    sendOSC('/notify', 1)
    due = getMillis() + {RENEW_S * 1000:g}
  end
end
"""


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _prop(kind: str, key: str, value: str) -> str:
    return f"<property type='{kind}'><key>{_cdata(key)}</key><value>{value}</value></property>"


def _frame(x: int, y: int, w: int, h: int) -> str:
    return _prop("r", "frame", f"<x>{x}</x><y>{y}</y><w>{w}</w><h>{h}</h>")


def _color(r: float, g: float, b: float, a: float = 1.0) -> str:
    return _prop("c", "color", f"<r>{r:g}</r><g>{g:g}</g><b>{b:g}</b><a>{a:g}</a>")


def _partial(kind: str, conversion: str, value: str, lo: float = 0, hi: float = 1) -> str:
    return (f"<partial><type>{kind}</type><conversion>{conversion}</conversion><value>{_cdata(value)}</value>"
            f"<scaleMin>{lo:g}</scaleMin><scaleMax>{hi:g}</scaleMax></partial>")


def osc_message(path: str, args: list[str], triggers: list[tuple[str, str]], receive: bool = False) -> str:
    """An ``<osc>`` message: ``args`` are partials in the declared order; triggers (var, condition).

    ``receive``: an incoming message to the same address (and constant arguments) sets the
    control's values; feedback stays off, so such a change is not sent back.
    """
    trig = "".join(f"<trigger><var>{_cdata(v)}</var><condition>{c}</condition></trigger>" for v, c in triggers)
    return (f"<osc><enabled>1</enabled><send>1</send><receive>{int(receive)}</receive><feedback>0</feedback>"
            f"<connections>11111</connections><triggers>{trig}</triggers>"
            f"<path>{_partial('CONSTANT', 'STRING', path)}</path><arguments>{''.join(args)}</arguments></osc>")


def const(path: str, i: int, value: str | int | float) -> str:
    """A constant argument ``i`` of ``path``, converted as its declared kind."""
    kind = address(path).args[i].kind
    return _partial("CONSTANT", CONVERSION[kind], str(value))


def var(path: str, i: int, name: str, hi: float | None = None) -> str:
    """Argument ``i`` of ``path`` from the control's variable ``name`` scaled to the declared range."""
    a = address(path).args[i]
    lo, top = bounds(path, a.name)
    return _partial("VALUE", CONVERSION[a.kind], name, lo, top if hi is None else hi)


def _tap(path: str, *values: str | int | float) -> str:
    """A button's message: ``path`` with constant arguments, sent when it is pressed."""
    return osc_message(path, [const(path, i, v) for i, v in enumerate(values)], [("x", "RISE")])


Frame = tuple[int, int, int, int]


def _node(kind: str, name: str, frame: Frame, props: str = "", values: str = "", messages: str = "",
          children: str = "") -> str:
    """One control; its ID derives from its name, so names are unique across the document."""
    kids = f"<children>{children}</children>" if children else ""
    return (f"<node ID='{uuid.uuid5(_NS, name)}' type='{kind}'><properties>{_prop('s', 'name', _cdata(name))}"
            f"{_frame(*frame)}{props}</properties><values>{values}</values><messages>{messages}</messages>{kids}</node>")


class _Layout:
    """Nodes of one container (the root, a pager or a page); frames are relative to it."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix  # names are unique across the document: node IDs derive from them
        self.nodes: list[str] = []

    def node(self, kind: str, name: str, frame: Frame, props: str = "", values: str = "", messages: str = "",
             children: str = "") -> None:
        self.nodes.append(_node(kind, self.prefix + name, frame, props, values, messages, children))

    def label(self, name: str, frame: Frame, text: str, script: str = "", size: int = 14) -> None:
        props = _prop("b", "interactive", "0") + _prop("i", "textSize", str(size)) + _color(0.8, 0.8, 0.8)
        if script:
            props += _prop("s", "script", _cdata(script))
        value = ("<value><key><![CDATA[text]]></key><locked>0</locked><lockedDefaultCurrent>0</lockedDefaultCurrent>"
                 f"<default>{_cdata(text)}</default><defaultPull>0</defaultPull></value>")
        self.node("LABEL", name, frame, props, value)

    def button(self, name: str, frame: Frame, message: str, colour: tuple[float, float, float], text: str = "",
               size: int = 14, script: str = "") -> None:
        props = _prop("i", "buttonType", "0") + _color(*colour)
        if script:
            props += _prop("s", "script", _cdata(script))
        self.node("BUTTON", name, frame, props, messages=message)
        if text:
            self.label(name + "_label", frame, text, size=size)

    def pager(self, name: str, frame: Frame, pages: list[tuple[str, _Layout]], tabbar: int) -> None:
        """A pager whose pages are ``(tab label, layout)``, each filling the area below the tab bar."""
        w, h = frame[2], frame[3]
        groups = [
            _node("GROUP", f"{self.prefix}{name}_{label}", (0, tabbar, w, h - tabbar),
                  _prop("s", "tabLabel", _cdata(label)) + _prop("b", "background", "0"), children="".join(page.nodes))
            for label, page in pages
        ]
        props = (_prop("b", "tabbar", "1") + _prop("b", "tabLabels", "1") + _prop("i", "tabbarSize", str(tabbar))
                 + _prop("i", "textSizeOn", "16") + _prop("i", "textSizeOff", "16"))
        self.node("PAGER", name, frame, props, children="".join(groups))

    def render(self) -> str:
        root = (f"<node ID='{uuid.uuid5(_NS, 'root')}' type='GROUP'><properties>"
                f"{_prop('s', 'name', _cdata('Timbrespace'))}{_frame(0, 0, WIDTH, HEIGHT)}</properties>"
                f"<values></values><children>{''.join(self.nodes)}</children></node>")
        return f"<?xml version='1.0' encoding='UTF-8'?><lexml version='{LEXML_VERSION}'>{root}</lexml>"


#: The pager's tab bar height, and where the pager starts below the top bar.
TABBAR = 40
PAGER_TOP = 80
#: The smallest side of anything a finger presses: 44 pt, Apple's minimum hit target, which an
#: iPad's 1024 x 768 points lay out one to one.
TOUCH = 44


def _map_alpha_keys(page: _Layout) -> None:
    """What both pages share: the map pad, the alpha fader and the keyboard."""
    xy = osc_message("/latent", [var("/latent", 0, "x"), var("/latent", 1, "y")], [("x", "ANY"), ("y", "ANY")],
                     receive=True)
    page.node("XY", "map", (20, 10, 430, 430), _color(0.2, 0.6, 1.0), messages=xy)
    alpha = osc_message("/alpha", [var("/alpha", 0, "x")], [("x", "ANY")], receive=True)
    page.node("FADER", "alpha", (470, 10, 60, 410), _color(1.0, 0.6, 0.2), messages=alpha)
    page.label("alpha_label", (470, 420, 60, 20), "alpha")
    # Each key sends /note pitch velocity on press and /note pitch 0 on release.
    key_w = (WIDTH - 40) // len(KEYS)
    for i, pitch in enumerate(KEYS):
        black = pitch % 12 in (1, 3, 6, 8, 10)
        msg = osc_message("/note", [const("/note", 0, pitch), var("/note", 1, "x", hi=VELOCITY)], [("x", "ANY")])
        shade = 0.15 if black else 0.95
        page.button(f"key_{pitch}", (20 + i * key_w, 452 if black else 472, key_w - 4, 160), msg,
                    (shade, shade, shade))


def _patch_page() -> _Layout:
    page = _Layout("patch_")
    _map_alpha_keys(page)
    for row, (label, path) in enumerate((("source", "/source"), ("target", "/target"), ("load", "/patch/load"))):
        y = 10 + row * 90
        page.label(f"{label}_row", (550, y, 450, 20), path)
        for i, preset in enumerate(PRESETS):
            # The page's engine first: a server left on the other engine would refuse (or not sound) it.
            page.button(f"{label}_{i}", (550 + i * 115, y + 24, 108, 56), _tap("/engine", "patch") + _tap(path, preset),
                        (0.4, 0.8, 0.4),
                        preset.split("/")[1])
    return page


def _timbre_page() -> _Layout:
    page = _Layout("timbre_")
    _map_alpha_keys(page)
    per_row, bw = 6, 76
    for block, path in enumerate(("/source", "/target")):
        y = 4 + block * 112
        page.label(f"{path[1:]}_row", (550, y, 450, 18), f"{path} (instrument)")
        for i, name in enumerate(INSTRUMENTS):
            r, c = divmod(i, per_row)
            page.button(f"{path[1:]}_{name}", (550 + c * bw, y + 18 + r * 46, bw - 4, TOUCH),
                        _tap("/engine", "timbre") + _tap(path, name),
                        (0.4, 0.7, 0.9), name.replace("_", " "), size=11)
    page.label("corners_row", (550, 240, 200, 20), "/corners (0,0) (1,0) (0,1) (1,1)")
    for i, kind in enumerate(MAPS):  # what the pad moves over
        page.button(f"map_{kind}", (758 + i * 124, 228, 118, TOUCH), _tap("/map", kind), (0.3, 0.8, 0.8),
                    f"map {kind}", size=12)
    for i, names in enumerate(CORNER_SETS):
        page.button(f"corners_{i}", (550 + i * 152, 276, 146, TOUCH), _tap("/corners", *names), (0.8, 0.6, 0.9),
                    " ".join(n.replace("_", " ") for n in names), size=10)
    zlo, zhi = bounds("/z", "value")
    page.label("z_row", (550, 324, 450, 20), f"/z: timbre code dimensions 0-{Z_DIMS - 1} ({zlo:g} to {zhi:g} sigma)")
    fw = 450 // Z_DIMS
    for i in range(Z_DIMS):
        msg = osc_message("/z", [const("/z", 0, i), var("/z", 1, "x")], [("x", "ANY")], receive=True)
        page.node("FADER", f"z_{i}", (550 + i * fw, 346, fw - 6, 94), _color(0.9, 0.5, 0.7), messages=msg)
    return page


def render_xml() -> str:
    """The layout document."""
    lay = _Layout()
    lay.label("title", (8, 11, 130, 30), "Timbrespace")
    # The layer selector: /layer N for each layer a default server runs (0 is everyone's).
    for n in range(LAYERS):
        lay.button(f"layer_{n}", (140 + n * 48, 4, TOUCH, TOUCH), _tap("/layer", n), (0.5, 0.7, 1.0), f"L{n}")
    for i, engine in enumerate(ENGINES):
        lay.button(f"engine_{engine}", (340 + i * 120, 4, 112, TOUCH), _tap("/engine", engine), (0.9, 0.8, 0.3),
                   f"engine {engine}")
    lay.button("panic", (600, 4, 110, TOUCH), _tap("/panic"), (1.0, 0.3, 0.3), "panic")
    lay.button("status", (720, 4, 110, TOUCH), _tap("/status"), (0.6, 0.6, 0.6), "status")
    # Join the session and follow the layer: the pad and faders then move with every player's changes.
    lay.button("join", (840, 4, 110, TOUCH), _tap("/hello", PLAYER["touchosc"]) + _tap("/notify", 1),
               (0.4, 0.9, 0.6), "join", script=RENEW_SCRIPT)
    lay.label("status_display", (20, 52, WIDTH - 40, 26), "press status", STATUS_SCRIPT, size=11)
    lay.pager("pages", (0, PAGER_TOP, WIDTH, HEIGHT - PAGER_TOP),
              [("patch", _patch_page()), ("timbre", _timbre_page())], TABBAR)
    return lay.render()


def render() -> bytes:
    """The ``.tosc`` bytes: the XML compressed with zlib (level 9, so the output is reproducible)."""
    return zlib.compress(render_xml().encode("utf-8"), 9)
