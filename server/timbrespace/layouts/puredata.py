"""``clients/puredata/timbrespace.pd``: a vanilla Pure Data patch (oscformat, netsend -u -b, oscparse).

Every address gets a receiver ``ts<path>`` (``[r ts/note]``, ``[r ts/patch/load]``) feeding its own
``[oscformat]``, so other patches (and the tests) play it with ``; ts/note 60 100`` (``; ts/status
bang`` for an address without arguments); on the canvas,
sliders with the declared ranges, a keyboard of message boxes, preset and status buttons drive the
same objects, and for the timbre engine: engine, instrument and corner messages and a /z slider
per timbre-code dimension. Replies come back on netsend's own socket (the server answers the sender) and are
printed and sent to ``[r ts/reply]``. The sliders also listen on ``ts-ui/x``, ``ts-ui/y`` and
``ts-ui/alpha``.

Following the server: a message box says ``/hello`` and ``/notify 1`` (renewed every
:data:`RENEW_S` seconds until ``/notify 0``); the layer's feedback then sets the map, alpha and /z
sliders without sending anything back (``set``), and moves two dots on a small map: the layer's
point and the last point another player moved (``/cursor``). Feedback that changes at the
feedback rate (points, parameters) is not printed; the rest is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from timbrespace.layouts._spec import (
    CORNER_SETS,
    HOST,
    INSTRUMENTS,
    KEYS,
    PLAYER,
    PORT,
    PRESETS,
    RENEW_S,
    VELOCITY,
    Z_DIMS,
    bounds,
)
from timbrespace.protocol.addresses import ADDRESSES, ENGINES, MAPS


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _escape(text: str) -> str:
    return text.replace("$", "\\$").replace(",", " \\,").replace(";", " \\;")


@dataclass
class _Patch:
    lines: list[str] = field(default_factory=list)
    wires: list[tuple[int, int, int, int]] = field(default_factory=list)
    count: int = 0

    def add(self, kind: str, x: int, y: int, text: str) -> int:
        self.lines.append(f"#X {kind} {x} {y} {text};")
        self.count += 1
        return self.count - 1

    def obj(self, x: int, y: int, text: str) -> int:
        return self.add("obj", x, y, text)

    def msg(self, x: int, y: int, text: str) -> int:
        return self.add("msg", x, y, text)

    def text(self, x: int, y: int, text: str) -> None:
        self.add("text", x, y, _escape(text))

    def cnv(self, x: int, y: int, w: int, h: int, receive: str, colour: str) -> int:
        # selectable size, width, height, send, receive, label, label x/y, font, size, colours, ?
        return self.obj(x, y, f"cnv 8 {w} {h} empty {receive} empty 0 0 0 12 {colour} #404040 0")

    def hsl(self, x: int, y: int, lo: float, hi: float, label: str, width: int = 160) -> int:
        # width height bottom top log init send receive label x_off y_off font size colours value steady
        return self.obj(x, y, f"hsl {width} 18 {_num(lo)} {_num(hi)} 0 0 empty ts-ui/{label} {label} 4 -10 0 12 "
                              "#fcfcfc #000000 #000000 0 1")

    def wire(self, a: int, b: int, outlet: int = 0, inlet: int = 0) -> None:
        self.wires.append((a, outlet, b, inlet))

    def render(self) -> str:
        # The window holds everything placed (the /z sliders are the lowest), with a margin.
        xs, ys = zip(*((int(w[2]), int(w[3])) for w in (line.split(" ", 4) for line in self.lines)))
        head = f"#N canvas 40 40 {max(xs) + 200} {max(ys) + 80} 12;"
        tail = [f"#X connect {a} {o} {b} {i};" for a, o, b, i in self.wires]
        return "\n".join([head, *self.lines, *tail]) + "\n"


def render_text() -> str:
    """The patch as Pd file text."""
    p = _Patch()
    p.text(20, 10, "Timbrespace from Pure Data vanilla. Generated from the OSC address declaration "
                   "by python -m timbrespace.layouts: edit the generator and not this file.")
    p.text(20, 40, f"Set the server with the connect box, or send HOST PORT to ts/connect (default {HOST} {PORT})")
    # -- the connection: netsend -u -b; its right outlet gives the server's replies.
    load = p.obj(20, 80, "loadbang")
    connect = p.msg(20, 110, f"connect {HOST} {PORT}")
    rconnect = p.obj(220, 80, "r ts/connect")
    as_list = p.obj(330, 80, "list")
    connect_to = p.msg(220, 110, "disconnect \\, connect \\$1 \\$2")
    prepend = p.obj(20, 160, "list prepend send")
    trim = p.obj(20, 190, "list trim")
    net = p.obj(20, 220, "netsend -u -b")
    parse = p.obj(120, 250, "oscparse")
    rtrim = p.obj(120, 280, "list trim")
    route = p.obj(120, 310, "route fail")
    p.wire(load, connect)
    p.wire(rconnect, as_list)
    p.wire(as_list, connect_to)
    p.wire(connect, net)
    p.wire(connect_to, net)
    p.wire(prepend, trim)
    p.wire(trim, net)
    p.wire(net, parse, outlet=1)
    p.wire(parse, rtrim)
    p.wire(rtrim, route)
    reply_print = p.obj(280, 340, "print timbrespace")
    reply_send = p.obj(280, 370, "s ts/reply")
    _print_fails(p, route, 250, 150)
    p.wire(rtrim, reply_send)
    p.text(20, 400, "Replies print to the Pd window and go to [r ts/reply] (oscparse: 'status.reply clients 1 ...').")

    # -- one receiver and one oscformat per declared address.
    fmt: dict[str, int] = {}
    lists: dict[str, int] = {}
    x, y = 560, 80
    for a in ADDRESSES:
        # [list] turns "; ts/param filter_cutoff 0.5" (a message, not a list) into a list.
        r = p.obj(x, y, f"r ts{a.path}")
        lst = p.obj(x + 140, y, "list")
        f = p.obj(x + 190, y, "oscformat " + " ".join(a.path.strip("/").split("/")))
        p.wire(r, lst)
        p.wire(lst, f)
        p.wire(f, prepend)
        fmt[a.path] = f
        lists[a.path] = lst
        y += 34

    # -- controls on the canvas, ranges from the declaration.
    y = 440
    p.text(20, y, "map point (/latent) and interpolation (/alpha)")
    lx, ly = bounds("/latent", "x"), bounds("/latent", "y")
    sx = p.hsl(20, y + 40, lx[0], lx[1], "x")
    sy = p.hsl(20, y + 80, ly[0], ly[1], "y")
    # Each slider stores its value, then both stores go out as one pair: feedback fills the
    # stores too (without sending), so dragging y alone after another player moved x sends the
    # point as it is now, not an x from before.
    stores = []
    for i, slider in enumerate((sx, sy)):
        split = p.obj(200, y + 40 + i * 40, "t b f")
        store = p.obj(260 + i * 50, y + 110, "f")
        p.wire(slider, split)
        p.wire(split, store, outlet=1, inlet=1)
        stores.append((split, store))
    both = p.obj(200, y + 110, "t b b")
    pack = p.obj(200, y + 140, "pack f f")
    for i, (split, store) in enumerate(stores):
        p.wire(split, both)
        p.wire(both, store, outlet=i)  # right to left: y's store first, into the cold inlet
        p.wire(store, pack, inlet=i)
    p.wire(pack, fmt["/latent"])
    alo, ahi = bounds("/alpha", "alpha")
    sa = p.hsl(20, y + 130, alo, ahi, "alpha")
    p.wire(sa, fmt["/alpha"])

    y = 620
    p.text(20, y, f"keyboard (/note pitch velocity; velocity 0 releases), velocity {VELOCITY}")
    for i, key in enumerate(KEYS):
        on = p.msg(20 + i * 44, y + 30, f"{key} {VELOCITY}")
        off = p.msg(20 + i * 44, y + 56, f"{key} 0")
        p.wire(on, fmt["/note"])
        p.wire(off, fmt["/note"])
    panic = p.msg(20 + len(KEYS) * 44, y + 30, "bang")
    p.wire(panic, fmt["/panic"])
    p.text(20 + len(KEYS) * 44, y + 56, "panic")

    y = 720
    for row, (label, path) in enumerate((("load", "/patch/load"), ("source", "/source"), ("target", "/target"))):
        p.text(20, y + row * 28, label)
        first = _engine_first(p, fmt, "patch", 890, y + row * 28, path)
        for i, preset in enumerate(PRESETS):
            m = p.msg(90 + i * 200, y + row * 28, f"symbol {preset}")
            p.wire(m, first)
    y = 810
    status = p.msg(20, y, "bang")
    p.wire(status, fmt["/status"])
    p.text(70, y, "/status: the reply prints in the Pd window")
    _timbre(p, fmt, 860)
    _follow(p, lists, route, reply_print, [store for _, store in stores], pack)
    return p.render()


def _follow(p: _Patch, lists: dict[str, int], route: int, reply_print: int, stores: list[int], pack: int) -> None:
    """Join and subscribe, renew the subscription, and let the feedback set the controls."""
    x, y = 1000, 80
    p.text(x, y, f"follow the server: join as {PLAYER['puredata']} (edit the name) and subscribe. The map and "
                 "alpha and /z sliders then follow what every player does")
    p.msg(x, y + 30, f"\\; ts/hello {PLAYER['puredata']} \\; ts/notify 1")
    p.msg(x + 230, y + 30, "\\; ts/notify 0")
    p.msg(x + 350, y + 30, "\\; ts/bye bang")
    # /notify 1 again every RENEW_S seconds while subscribed: a UDP subscription expires.
    r = p.obj(x, y + 70, "r ts/notify")
    sel = p.obj(x, y + 100, "sel 0")
    stop = p.msg(x, y + 130, "stop")
    start = p.obj(x + 60, y + 130, "t b")
    delay = p.obj(x, y + 160, f"delay {RENEW_S * 1000:g}")
    again = p.obj(x, y + 190, "t b b")
    one = p.msg(x + 80, y + 220, "1")
    p.wire(r, sel)
    p.wire(sel, stop)
    p.wire(sel, start, outlet=1)
    p.wire(stop, delay)
    p.wire(start, delay)
    p.wire(delay, again)
    p.wire(again, one, outlet=1)
    p.wire(one, lists["/notify"])
    p.wire(again, delay)
    # Feedback: oscparse gives "latent x y", "z 3 0.5", "cursor 2 name x y", ...; what changes at
    # the feedback rate is shown, not printed.
    y += 260
    fb = p.obj(x, y, "route latent alpha z cursor param")
    p.wire(route, fb, outlet=1)  # everything but /fail, which prints once
    p.wire(fb, reply_print, outlet=5)
    point = p.obj(x, y + 30, "t l l")
    xy = p.obj(x, y + 60, "unpack f f")
    p.wire(fb, point)
    p.wire(point, xy, outlet=1)
    for i, (axis, store) in enumerate(zip("xy", stores)):
        split = p.obj(x + i * 90, y + 90, "t f f")
        show = p.msg(x + i * 90, y + 120, "set \\$1")
        p.wire(xy, split, outlet=i)
        p.wire(split, store, outlet=1, inlet=1)
        p.wire(split, show)
        p.wire(show, p.obj(x + i * 90, y + 150, f"s ts-ui/{axis}"))
    show = p.msg(x + 200, y + 30, "set \\$1")
    p.wire(fb, show, outlet=1)
    p.wire(show, p.obj(x + 200, y + 60, "s ts-ui/alpha"))
    z = p.obj(x + 200, y + 90, "route " + " ".join(str(i) for i in range(Z_DIMS)))
    p.wire(fb, z, outlet=2)
    for i in range(Z_DIMS):
        show = p.msg(x + 200 + i * 60, y + 120, "set \\$1")
        p.wire(z, show, outlet=i)
        p.wire(show, p.obj(x + 200 + i * 60, y + 150, f"s ts-ui/z{i}"))
    cursor = p.obj(x + 300, y + 30, "list split 2")
    p.wire(fb, cursor, outlet=3)
    # The map: the layer's point (feedback, and this patch's own moves) and the others' last one.
    y += 200
    side, dot = 160, 10
    p.text(x, y, "the map: the layer's point (blue) and the last point another player moved (red)")
    p.cnv(x, y + 30, side, side, "empty", "#e0e0e0")
    mine = _dot(p, x + 200, y + 30, (x, y + 30), side - dot, dot, "ts-ui/point", "#4060ff")
    others = _dot(p, x + 320, y + 30, (x, y + 30), side - dot, dot, "ts-ui/others", "#ff4040")
    p.wire(point, mine)
    p.wire(pack, mine)
    p.wire(cursor, others, outlet=1)


def _dot(p: _Patch, x: int, y: int, origin: tuple[int, int], span: int, size: int, receive: str,
         colour: str) -> int:
    """A dot on the map moved to the point "x y" sent into the returned inlet (y grows upwards)."""
    xy = p.obj(x, y, "unpack f f")
    px = p.obj(x, y + 30, f"expr {origin[0]} + \\$f1 * {span}")
    py = p.obj(x + 60, y + 60, f"expr {origin[1]} + (1 - \\$f1) * {span}")
    pos = p.obj(x, y + 90, "pack f f")
    move = p.msg(x, y + 120, "pos \\$1 \\$2")
    p.wire(xy, px)
    p.wire(xy, py, outlet=1)
    p.wire(py, pos, inlet=1)
    p.wire(px, pos)
    p.wire(pos, move)
    p.wire(move, p.obj(x, y + 150, f"s {receive}"))
    p.cnv(origin[0], origin[1], size, size, receive, colour)
    return xy


def _print_fails(p: _Patch, route: int, x: int, y: int) -> None:
    """``/fail address reason`` from [route fail] printed once, as words.

    oscparse gives the reason as one symbol, which [print] shows with every space escaped
    (``unknown\\ instrument``). Its bytes are parsed back into words ([fudiparse]; it splits at
    commas and semicolons, so the pieces are gathered in a [list store]) and printed after the address.
    """
    # Two columns in the space right of the connection objects.
    split = p.obj(x, y, "t a a")
    reason = p.obj(x, y + 30, "list split 1")
    codes = p.obj(x, y + 60, "list fromsymbol")
    order = p.obj(x, y + 90, "t b a b")
    store = p.obj(x, y + 120, "list store")
    before = p.obj(x, y + 150, "list prepend")
    address = p.obj(x + 135, y, "list split 1")
    parse = p.obj(x + 135, y + 30, "fudiparse")
    append = p.obj(x + 135, y + 60, "list prepend append")
    trim = p.obj(x + 135, y + 90, "list trim")
    words = p.obj(x + 135, y + 120, "list trim")
    out = p.obj(x + 135, y + 150, "print timbrespace-fail")
    p.wire(route, split)
    p.wire(split, address, outlet=1)  # right to left: the address is stored first
    p.wire(address, before, inlet=1)
    p.wire(split, reason)
    p.wire(reason, codes, outlet=1)
    p.wire(codes, order)
    p.wire(order, store, outlet=2, inlet=1)  # empty the store
    p.wire(order, parse, outlet=1)
    p.wire(parse, append)
    p.wire(append, trim)
    p.wire(trim, store)
    p.wire(order, store, outlet=0)  # then output what was gathered
    p.wire(store, before)
    p.wire(before, words)
    p.wire(words, out)


def _engine_first(p: _Patch, fmt: dict[str, int], engine: str, x: int, y: int, path: str) -> int:
    """[t a b]: select ``engine`` (right outlet, first), then send to ``path``; returns its inlet.

    A preset names nothing on the timbre engine (and an instrument nothing on the patch engine),
    so a button must not depend on which engine the server was left on.
    """
    first = p.obj(x, y, "t a b")
    select = p.msg(x + 60, y, f"symbol {engine}")
    p.wire(first, select, outlet=1)
    p.wire(select, fmt["/engine"])
    p.wire(first, fmt[path])
    return first


def _timbre(p: _Patch, fmt: dict[str, int], y: int) -> None:
    """The engine switch and the timbre engine's controls, from ``y`` down."""
    p.text(20, y, "engine, what /latent moves over (/map), the timbre engine's instruments (/source /target), "
           "corners and timbre code (/z)")
    for i, engine in enumerate(ENGINES):
        p.wire(p.msg(20 + i * 120, y + 30, f"symbol {engine}"), fmt["/engine"])
    for i, kind in enumerate(MAPS):
        p.wire(p.msg(280 + i * 120, y + 30, f"symbol {kind}"), fmt["/map"])
    for row, path in enumerate(("/source", "/target")):
        p.text(20, y + 64 + row * 28, path[1:])
        first = _engine_first(p, fmt, "timbre", 90 + len(INSTRUMENTS) * 110, y + 64 + row * 28, path)
        for i, name in enumerate(INSTRUMENTS):
            p.wire(p.msg(90 + i * 110, y + 64 + row * 28, f"symbol {name}"), first)
    for i, names in enumerate(CORNER_SETS):
        p.wire(p.msg(20 + i * 330, y + 130, "list " + " ".join(names)), fmt["/corners"])
    zlo, zhi = bounds("/z", "value")
    for i in range(Z_DIMS):
        slider = p.hsl(20 + (i % 4) * 200, y + 190 + (i // 4) * 60, zlo, zhi, f"z{i}", width=140)
        prepend = p.obj(20 + (i % 4) * 200, y + 214 + (i // 4) * 60, f"list prepend {i}")
        p.wire(slider, prepend)
        p.wire(prepend, fmt["/z"])


def render() -> bytes:
    """The patch file's bytes."""
    return render_text().encode("utf-8")
