"""``clients/touchosc/timbrespace.tosc``: a TouchOSC layout (zlib-compressed ``lexml`` XML).

One page: an XY pad sending ``/latent``, a one-octave keyboard of momentary buttons sending
``/note pitch velocity`` (velocity 0 on release), an ``/alpha`` fader, rows of preset buttons for
``/source``, ``/target`` and ``/patch/load``, panic and status buttons and a label that shows the
``/status.reply`` and ``/fail`` replies (a small Lua script). Ranges are the declared ones.
"""

from __future__ import annotations

import uuid
import zlib

from timbrespace.layouts._spec import KEYS, PRESETS, VELOCITY, address, bounds

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


def osc_message(path: str, args: list[str], triggers: list[tuple[str, str]]) -> str:
    """An ``<osc>`` message: ``args`` are partials in the declared order; triggers (var, condition)."""
    trig = "".join(f"<trigger><var>{_cdata(v)}</var><condition>{c}</condition></trigger>" for v, c in triggers)
    return ("<osc><enabled>1</enabled><send>1</send><receive>0</receive><feedback>0</feedback>"
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


class _Layout:
    def __init__(self) -> None:
        self.nodes: list[str] = []

    def node(self, kind: str, name: str, frame: tuple[int, int, int, int], props: str = "", values: str = "",
             messages: str = "") -> None:
        ident = uuid.uuid5(_NS, name)
        self.nodes.append(
            f"<node ID='{ident}' type='{kind}'><properties>{_prop('s', 'name', _cdata(name))}{_frame(*frame)}"
            f"{props}</properties><values>{values}</values><messages>{messages}</messages></node>"
        )

    def label(self, name: str, frame: tuple[int, int, int, int], text: str, script: str = "") -> None:
        props = _prop("b", "interactive", "0") + _prop("i", "textSize", "14") + _color(0.8, 0.8, 0.8)
        if script:
            props += _prop("s", "script", _cdata(script))
        value = ("<value><key><![CDATA[text]]></key><locked>0</locked><lockedDefaultCurrent>0</lockedDefaultCurrent>"
                 f"<default>{_cdata(text)}</default><defaultPull>0</defaultPull></value>")
        self.node("LABEL", name, frame, props, value)

    def button(self, name: str, frame: tuple[int, int, int, int], message: str, colour: tuple[float, float, float],
               text: str = "") -> None:
        props = _prop("i", "buttonType", "0") + _color(*colour)
        self.node("BUTTON", name, frame, props, messages=message)
        if text:
            self.label(name + "_label", frame, text)

    def render(self) -> str:
        root = (f"<node ID='{uuid.uuid5(_NS, 'root')}' type='GROUP'><properties>"
                f"{_prop('s', 'name', _cdata('Timbrespace'))}{_frame(0, 0, WIDTH, HEIGHT)}</properties>"
                f"<values></values><children>{''.join(self.nodes)}</children></node>")
        return f"<?xml version='1.0' encoding='UTF-8'?><lexml version='{LEXML_VERSION}'>{root}</lexml>"


def render_xml() -> str:
    """The layout document."""
    lay = _Layout()
    lay.label("title", (20, 10, 600, 30), "Timbrespace: map, keyboard, alpha, presets (generated from the protocol)")
    # The map: x and y scaled to /latent's declared ranges.
    xy = osc_message("/latent", [var("/latent", 0, "x"), var("/latent", 1, "y")], [("x", "ANY"), ("y", "ANY")])
    lay.node("XY", "map", (20, 50, 480, 480), _color(0.2, 0.6, 1.0), messages=xy)
    # /alpha fader.
    alpha = osc_message("/alpha", [var("/alpha", 0, "x")], [("x", "ANY")])
    lay.node("FADER", "alpha", (520, 50, 60, 480), _color(1.0, 0.6, 0.2), messages=alpha)
    lay.label("alpha_label", (520, 535, 60, 20), "alpha")
    # Presets: source, target, load rows (names as strings).
    for row, (label, path) in enumerate((("source", "/source"), ("target", "/target"), ("load", "/patch/load"))):
        y = 50 + row * 90
        lay.label(f"{label}_row", (600, y, 400, 20), f"{path}")
        for i, preset in enumerate(PRESETS):
            msg = osc_message(path, [const(path, 0, preset)], [("x", "RISE")])
            lay.button(f"{label}_{i}", (600 + i * 102, y + 24, 96, 56), msg, (0.4, 0.8, 0.4), preset.split("/")[1])
    # Panic and status.
    lay.button("panic", (600, 330, 196, 60), osc_message("/panic", [], [("x", "RISE")]), (1.0, 0.3, 0.3), "panic")
    lay.button("status", (804, 330, 196, 60), osc_message("/status", [], [("x", "RISE")]), (0.6, 0.6, 0.6),
               "status")
    lay.label("status_display", (600, 400, 400, 130), "press status", STATUS_SCRIPT)
    # The keyboard: each key sends /note pitch velocity on press and /note pitch 0 on release.
    key_w = (WIDTH - 40) // len(KEYS)
    for i, pitch in enumerate(KEYS):
        black = pitch % 12 in (1, 3, 6, 8, 10)
        msg = osc_message("/note", [const("/note", 0, pitch), var("/note", 1, "x", hi=VELOCITY)], [("x", "ANY")])
        shade = 0.15 if black else 0.95
        lay.button(f"key_{pitch}", (20 + i * key_w, 570 if black else 600, key_w - 4, 150), msg, (shade, shade, shade))
    return lay.render()


def render() -> bytes:
    """The ``.tosc`` bytes: the XML compressed with zlib (level 9, so the output is reproducible)."""
    return zlib.compress(render_xml().encode("utf-8"), 9)

