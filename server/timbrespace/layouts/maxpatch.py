"""``clients/max/timbrespace.maxpat``: a Max patcher (JSON) driving the server with udpsend.

A keyboard (``kslider``) sends ``/note``, two number boxes bounded by the declared ranges send
``/latent``, a slider ``/alpha``; message boxes select the engine, load presets, set source and
target, choose the layer (``/layer N``), ask for ``/status`` and panic. For the timbre engine, two
menus (``umenu``) of instruments send ``/source`` and ``/target``, message boxes ``/corners``
sets, and a dimension box with a value box ``/z``. On load it sends ``/reply/port`` so the
server's replies go to ``udpreceive``'s port, where they are printed and shown.

Following the server: the "follow" toggle says ``/hello`` and ``/notify 1`` (renewed every
:data:`RENEW_S` seconds by a ``metro``; off sends ``/notify 0``); the layer's ``/latent`` and
``/alpha`` feedback then set the map boxes and the alpha slider (``set``: shown, never sent back).
"""

from __future__ import annotations

import json
from typing import Any

from timbrespace.layouts._spec import (
    CORNER_SETS,
    HOST,
    INSTRUMENTS,
    LAYERS,
    PLAYER,
    PORT,
    PRESETS,
    RENEW_S,
    Z_DIMS,
    address,
    bounds,
)
from timbrespace.protocol.addresses import ENGINES, MAPS

#: The port the patch's udpreceive listens on for replies. Not 57131: a second server on the same
#: host takes the port after the default 57130, and udpreceive would then fail to bind (or steal
#: that server's packets). Far enough above 57130 for a row of servers, and clear of SuperCollider's
#: 57110 (scsynth) and 57120 (sclang).
REPLY_PORT = 57199


class _Patcher:
    def __init__(self) -> None:
        self.boxes: list[dict[str, Any]] = []
        self.lines: list[dict[str, Any]] = []

    def box(self, maxclass: str, rect: tuple[float, float, float, float], text: str | None = None,
            inlets: int = 1, outlets: int = 0, **extra: Any) -> str:
        ident = f"obj-{len(self.boxes) + 1}"
        b: dict[str, Any] = {"id": ident, "maxclass": maxclass, "numinlets": inlets, "numoutlets": outlets,
                             "patching_rect": list(rect)}
        if text is not None:
            b["text"] = text
        b.update(extra)
        self.boxes.append({"box": b})
        return ident

    def obj(self, rect: tuple[float, float, float, float], text: str, inlets: int = 1, outlets: int = 1) -> str:
        return self.box("newobj", rect, text, inlets, outlets)

    def message(self, rect: tuple[float, float, float, float], text: str) -> str:
        return self.box("message", rect, text, 2, 1)

    def comment(self, rect: tuple[float, float, float, float], text: str) -> str:
        return self.box("comment", rect, text, 1, 0)

    def wire(self, src: str, dst: str, outlet: int = 0, inlet: int = 0) -> None:
        self.lines.append({"patchline": {"source": [src, outlet], "destination": [dst, inlet]}})

    def render(self) -> dict[str, Any]:
        return {"patcher": {
            "fileversion": 1,
            "appversion": {"major": 8, "minor": 5, "revision": 0, "architecture": "x64", "modernui": 1},
            "classnamespace": "box",
            "rect": [60.0, 80.0, 900.0, 860.0],
            "openinpresentation": 0,
            "default_fontsize": 12.0,
            "gridsize": [15.0, 15.0],
            "boxes": self.boxes,
            "lines": self.lines,
        }}


def render_dict() -> dict[str, Any]:
    """The patcher as a dict."""
    p = _Patcher()
    p.comment((20, 10, 760, 20), "Timbrespace from Max. Generated from the OSC address declaration by "
                                 "python -m timbrespace.layouts (edit the generator, not this file).")
    send = p.obj((20, 780, 200, 22), f"udpsend {HOST} {PORT}", inlets=1, outlets=0)
    p.comment((230, 780, 400, 20), "change the host (and port) to your server's")
    # Keyboard: kslider -> pack pitch velocity -> /note.
    note = address("/note")
    plo, phi = bounds("/note", "pitch")
    low, keys = max(int(plo), 48), 36  # three octaves from C3, inside the declared pitch range
    assert low + keys - 1 <= phi
    kb = p.box("kslider", (20, 50, 336, 53), None, 2, 2, offset=low, range=keys)
    pack = p.obj((20, 120, 80, 22), "pack 0 0", inlets=2, outlets=1)
    pre_note = p.obj((20, 150, 120, 22), f"prepend {note.path}")
    p.wire(kb, pack, 0, 0)
    p.wire(kb, pack, 1, 1)
    p.wire(pack, pre_note)
    p.wire(pre_note, send)
    # The map: two bounded float boxes -> pak -> /latent.
    xlo, xhi = bounds("/latent", "x")
    ylo, yhi = bounds("/latent", "y")
    p.comment((400, 50, 200, 20), "map point x, y")
    fx = p.box("flonum", (400, 75, 60, 22), None, 1, 2, minimum=xlo, maximum=xhi, format=6)
    fy = p.box("flonum", (470, 75, 60, 22), None, 1, 2, minimum=ylo, maximum=yhi, format=6)
    # Each box stores its value, then both stores go out as one pair: feedback fills the stores
    # too (without sending), so changing y alone after another player moved x sends the point as
    # it is now, not an x from before.
    both = p.obj((540, 110, 40, 22), "t b b", inlets=1, outlets=2)
    pack = p.obj((400, 170, 80, 22), "pack 0. 0.", inlets=2, outlets=1)
    stores = []
    for i, box in enumerate((fx, fy)):
        split = p.obj((400 + i * 70, 110, 50, 22), "t b f", inlets=1, outlets=2)
        store = p.obj((400 + i * 70, 140, 40, 22), "f", inlets=2, outlets=1)
        p.wire(box, split)
        p.wire(split, store, 1, 1)
        p.wire(split, both)
        p.wire(both, store, i, 0)  # right to left: y's store first, into the cold inlet
        p.wire(store, pack, 0, i)
        stores.append(store)
    pre_latent = p.obj((400, 200, 120, 22), "prepend /latent")
    p.wire(pack, pre_latent)
    p.wire(pre_latent, send)
    # /alpha: a float slider over the declared range.
    alo, ahi = bounds("/alpha", "alpha")
    p.comment((600, 50, 200, 20), "alpha: source -> target")
    sl = p.box("slider", (600, 75, 150, 22), None, 1, 1, floatoutput=1, min=alo, size=ahi - alo,
               orientation=1)
    pre_alpha = p.obj((600, 140, 120, 22), "prepend /alpha")
    p.wire(sl, pre_alpha)
    p.wire(pre_alpha, send)
    # Presets, status, panic: message boxes straight to udpsend.
    y = 200
    for label, path in (("load", "/patch/load"), ("source", "/source"), ("target", "/target")):
        address(path)
        p.comment((20, y, 60, 20), label)
        for i, preset in enumerate(PRESETS):
            # Presets are the patch engine's: select it first (the server may have been left on timbre).
            m = p.message((90 + i * 190, y, 180, 22), f"/engine patch, {path} {preset}")
            p.wire(m, send)
        y += 34
    # /patch/list answers one page (total, start, names): this asks for the first.
    for i, text in enumerate(("/status", "/version", "/panic", "/patch/list 0 64")):
        address(text.split()[0])
        m = p.message((20 + i * 110, y + 10, 100, 22), text)
        p.wire(m, send)
    # The layer this patch plays (0 is everyone's).
    address("/layer")
    for n in range(LAYERS):
        p.wire(p.message((470 + n * 70, y + 10, 64, 22), f"/layer {n}"), send)
    # Replies: udpsend cannot receive, so on load the patch asks the server to send its replies
    # to udpreceive's port instead (/reply/port), then shows them.
    address("/reply/port")
    lb = p.obj((200, 340, 70, 22), "loadbang", inlets=1, outlets=1)
    ask = p.message((280, 340, 160, 22), f"/reply/port {REPLY_PORT}")
    p.wire(lb, ask)
    p.wire(ask, send)
    recv = p.obj((20, 380, 160, 22), f"udpreceive {REPLY_PORT}", inlets=1, outlets=1)
    prt = p.obj((20, 420, 120, 22), "print timbrespace", inlets=1, outlets=0)
    show = p.message((200, 420, 560, 22), "")
    p.wire(recv, prt)
    p.wire(recv, show, 0, 1)
    p.comment((200, 380, 560, 20), f"replies arriving on port {REPLY_PORT} (the last one shows here)")
    _timbre(p, send, 470)
    _follow(p, send, recv, (fx, fy), stores, sl)
    return p.render()


def _follow(p: _Patcher, send: str, recv: str, boxes: tuple[str, str], stores: list[str], alpha: str) -> None:
    """The follow toggle (join, subscribe, renew) and the feedback into the map boxes and alpha."""
    x, y = 620, 380
    p.comment((x, y - 150, 260, 20), f"follow the server (join as {PLAYER['max']})")
    toggle = p.box("toggle", (x, y - 125, 24, 24), None, 1, 1)
    split = p.obj((x, y - 95, 40, 22), "t i i", inlets=1, outlets=2)
    choose = p.obj((x + 60, y - 65, 50, 22), "sel 1 0", inlets=2, outlets=3)
    hello = p.message((x + 60, y - 35, 90, 22), f"/hello {PLAYER['max']}")
    off = p.message((x + 160, y - 35, 80, 22), "/notify 0")
    # metro bangs at once when turned on, then every RENEW_S: the subscription and its renewals.
    metro = p.obj((x, y - 65, 50, 22), f"metro {RENEW_S * 1000:g}", inlets=2, outlets=1)
    on = p.message((x, y - 35, 55, 22), "/notify 1")
    p.wire(toggle, split)
    p.wire(split, choose, 1, 0)  # right to left: /hello before the first /notify 1
    p.wire(choose, hello, 0, 0)
    p.wire(choose, off, 1, 0)
    p.wire(split, metro, 0, 0)
    p.wire(metro, on)
    for m in (hello, off, on):
        p.wire(m, send)
    route = p.obj((x, y + 70, 120, 22), "route /latent /alpha", inlets=2, outlets=3)
    p.wire(recv, route)
    xy = p.obj((x, y + 100, 80, 22), "unpack 0. 0.", inlets=1, outlets=2)
    p.wire(route, xy, 0, 0)
    for i, (box, store) in enumerate(zip(boxes, stores)):
        split = p.obj((x + i * 70, y + 130, 40, 22), "t f f", inlets=1, outlets=2)
        show = p.message((x + i * 70, y + 160, 50, 22), "set $1")
        p.wire(xy, split, i, 0)
        p.wire(split, store, 1, 1)
        p.wire(split, show, 0, 0)
        p.wire(show, box)
    show = p.message((x + 140, y + 100, 50, 22), "set $1")
    p.wire(route, show, 1, 0)
    p.wire(show, alpha)


def _timbre(p: _Patcher, send: str, y: int) -> None:
    """The engine switch and the timbre engine's controls, from ``y`` down."""
    p.comment((20, y, 760, 20), "engine, and the timbre engine's instruments, corners and timbre code")
    for i, engine in enumerate(ENGINES):
        p.wire(p.message((20 + i * 130, y + 26, 120, 22), f"/engine {engine}"), send)
    # Instrument menus: umenu's middle outlet gives the chosen item's text.
    items: list[str] = []
    for name in INSTRUMENTS:
        items += [name, ","]
    for i, path in enumerate(("/source", "/target")):
        address(path)
        p.comment((300 + i * 200, y + 26, 60, 20), path[1:])
        menu = p.box("umenu", (360 + i * 200, y + 26, 120, 22), None, 1, 3, items=items[:-1],
                     outlettype=["int", "", ""])
        pre = p.obj((360 + i * 200, y + 56, 120, 22), f"prepend {path}")
        # Instruments are the timbre engine's: select it first (right to left: the bang goes first).
        first = p.obj((360 + i * 200, y + 86, 60, 22), "t a b", inlets=1, outlets=2)
        select = p.message((430 + i * 200, y + 86, 110, 22), "/engine timbre")
        p.wire(menu, pre, 1, 0)
        p.wire(pre, first)
        p.wire(first, select, 1, 0)
        p.wire(select, send)
        p.wire(first, send, 0, 0)
    for i, names in enumerate(CORNER_SETS):
        p.wire(p.message((20, y + 90 + i * 28, 400, 22), "/corners " + " ".join(names)), send)
    below = y + 90 + len(CORNER_SETS) * 28 + 6
    for i, kind in enumerate(MAPS):  # what /latent moves over
        p.wire(p.message((20 + i * 130, below, 120, 22), f"/map {kind}"), send)
    # /z: a dimension box and a value box (prior sigmas) -> pak -> prepend /z.
    ilo, _ = bounds("/z", "index")
    vlo, vhi = bounds("/z", "value")
    p.comment((460, y + 90, 300, 20), f"/z dimension (0-{Z_DIMS - 1} shown here) and value in sigmas")
    dim = p.box("number", (460, y + 115, 50, 22), None, 1, 2, minimum=ilo, maximum=Z_DIMS - 1)
    val = p.box("flonum", (520, y + 115, 60, 22), None, 1, 2, minimum=vlo, maximum=vhi, format=6)
    pak = p.obj((460, y + 145, 80, 22), "pak 0 0.", inlets=2, outlets=1)
    pre_z = p.obj((460, y + 175, 120, 22), "prepend /z")
    p.wire(dim, pak, 0, 0)
    p.wire(val, pak, 0, 1)
    p.wire(pak, pre_z)
    p.wire(pre_z, send)


def render() -> bytes:
    """The ``.maxpat`` bytes (stable JSON)."""
    return (json.dumps(render_dict(), indent=2, sort_keys=False) + "\n").encode("utf-8")
