"""The generated client layouts (TouchOSC, Max, Pure Data) match the address declaration.

Each file is parsed as its application would read it; every OSC address it sends must be declared,
with the declared number of arguments, constants that the declaration accepts and controls whose
ranges lie inside the declared ones. The committed files must equal what the generators write now.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from timbrespace import layouts
from timbrespace.layouts import maxpatch, puredata, touchosc
from timbrespace.protocol.addresses import BY_PATH
from timbrespace.protocol.declaration import InvalidMessage

from conftest import ServerProc

ROOT = Path(__file__).resolve().parents[1]
KIND_OF = {"INTEGER": "int", "FLOAT": "float", "STRING": "str"}


def in_range(path: str, i: int, lo: float, hi: float) -> bool:
    a = BY_PATH[path].args[i]
    return (a.lo is None or lo >= a.lo) and (a.hi is None or hi <= a.hi) and lo <= hi


# -- drift -------------------------------------------------------------------------------------


def test_committed_layouts_equal_the_generator_output() -> None:
    assert layouts.stale() == [], "run: .venv/bin/python -m timbrespace.layouts"


def test_the_module_entry_point_checks_for_drift() -> None:
    out = subprocess.run([sys.executable, "-m", "timbrespace.layouts", "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    # A mistyped flag is refused before anything is written, not taken as "write them all".
    before = {rel: (ROOT / rel).stat().st_mtime_ns for rel in layouts.outputs()}
    bad = subprocess.run([sys.executable, "-m", "timbrespace.layouts", "--chek"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--chek" in bad.stderr and not bad.stdout, bad.stdout + bad.stderr
    assert {rel: (ROOT / rel).stat().st_mtime_ns for rel in layouts.outputs()} == before


def test_generation_is_deterministic(tmp_path: Path) -> None:
    layouts.write_all(tmp_path)
    assert layouts.stale(tmp_path) == []
    (tmp_path / "clients/max/timbrespace.maxpat").write_text("{}")
    assert layouts.stale(tmp_path) == ["clients/max/timbrespace.maxpat"]


# -- TouchOSC ----------------------------------------------------------------------------------


def tosc_xml() -> str:
    """The committed .tosc, decompressed."""
    return zlib.decompress((ROOT / "clients/touchosc/timbrespace.tosc").read_bytes()).decode("utf-8")


def tosc_messages() -> list[tuple[str, str, ET.Element]]:
    """(control type, control name, <osc> element) for every OSC message in the .tosc."""
    root = ET.fromstring(tosc_xml())
    assert root.tag == "lexml" and root.get("version") == touchosc.LEXML_VERSION
    (top,) = list(root)
    assert top.tag == "node" and top.get("type") == "GROUP"
    out = []
    ids = [n.get("ID") for n in root.iter("node")]
    assert len(ids) == len(set(ids))
    for node in root.iter("node"):
        name = next(p.findtext("value") for p in node.iter("property") if p.findtext("key") == "name")
        for osc in node.iterfind("messages/osc"):
            out.append((str(node.get("type")), str(name), osc))
    return out


def test_touchosc_layout_sends_only_declared_messages_in_range() -> None:
    msgs = tosc_messages()
    seen: dict[str, set[str]] = defaultdict(set)
    sent: dict[str, set[tuple[Any, ...]]] = defaultdict(set)
    for kind, name, osc in msgs:
        path = "".join(p.findtext("value") or "" for p in osc.iterfind("path/partial"))
        assert path in BY_PATH, f"{name}: {path}"
        decl = BY_PATH[path]
        parts = osc.findall("arguments/partial")
        need = sum(1 for a in decl.args if a.default is None)
        assert need <= len(parts) <= len(decl.args), f"{name}: {path} has {len(parts)} arguments"
        triggers = {t.findtext("var") for t in osc.iterfind("triggers/trigger")}
        assert triggers, name
        values: list[Any] = []
        for i, (p, a) in enumerate(zip(parts, decl.args)):
            conv = p.findtext("conversion") or ""
            assert KIND_OF[conv] == ("str" if a.kind == "ref" else a.kind), f"{name}: {a.name} as {conv}"
            text = p.findtext("value") or ""
            if p.findtext("type") == "CONSTANT":
                values.append(int(text) if conv == "INTEGER" else float(text) if conv == "FLOAT" else text)
            else:
                assert p.findtext("type") == "VALUE" and text in {"x", "y"} and text in triggers, name
                lo, hi = float(p.findtext("scaleMin") or "nan"), float(p.findtext("scaleMax") or "nan")
                assert in_range(path, i, lo, hi), f"{name}: {a.name} scaled to [{lo}, {hi}]"
                values.append(hi)  # both ends are in range; the top one must also convert
        decl.parse(values)  # raises InvalidMessage if the declaration would reject it
        seen[path].add(kind)
        sent[path].add(tuple(values))
    assert seen["/latent"] == {"XY"} and seen["/alpha"] == {"FADER"} and seen["/z"] == {"FADER"}
    assert {"/note", "/source", "/target", "/patch/load", "/status", "/panic", "/engine", "/corners"} <= set(seen)
    # Both engines, every instrument as source and target, every corner set, the first Z_DIMS dimensions.
    assert sent["/engine"] == {(e,) for e in layouts.ENGINES} and sent["/map"] == {(m,) for m in layouts.MAPS}
    for path in ("/source", "/target"):
        assert {(i,) for i in layouts.INSTRUMENTS} | {(p,) for p in layouts.PRESETS} == sent[path]
    assert sent["/corners"] == set(layouts.CORNER_SETS)
    assert {v[0] for v in sent["/z"]} == set(range(layouts.Z_DIMS))
    for page in ("patch_", "timbre_"):
        keys = [n for _, n, o in msgs if n.startswith(page + "key_")]
        assert len(keys) == len(layouts.KEYS)


def test_touchosc_layout_pages_one_per_engine() -> None:
    root = ET.fromstring(tosc_xml())
    (pager,) = [n for n in root.iter("node") if n.get("type") == "PAGER"]
    pages = pager.findall("children/node")
    tabs = [next(p.findtext("value") for p in g.iter("property") if p.findtext("key") == "tabLabel") for g in pages]
    assert [g.get("type") for g in pages] == ["GROUP", "GROUP"] and tabs == list(layouts.ENGINES)
    # Every control lies inside its container (frames are relative to the parent).
    for parent in root.iter("node"):
        pw, ph = _size(parent)
        for child in parent.findall("children/node"):
            x, y, w, h = _frame(child)
            assert min(x, y) >= 0 and x + w <= pw and y + h <= ph, _name(child)
        # Controls a finger can touch do not overlap (labels lie over their buttons; pages share the pager).
        if parent.get("type") != "PAGER":
            kids = [c for c in parent.findall("children/node") if c.get("type") != "LABEL"]
            for i, a in enumerate(kids):
                ax, ay, aw, ah = _frame(a)
                for b in kids[i + 1:]:
                    bx, by, bw, bh = _frame(b)
                    assert not (ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah), (_name(a), _name(b))


def test_touchosc_controls_are_big_enough_for_a_finger() -> None:
    # 44 pt is Apple's minimum hit target; an iPad lays out the 1024 x 768 layout one point a unit.
    root = ET.fromstring(tosc_xml())
    touchable = [n for n in root.iter("node") if n.get("type") in ("BUTTON", "FADER", "XY")]
    assert len(touchable) >= 80  # the top bar, both pages' pads, faders, keys and buttons
    small = {_name(n): _size(n) for n in touchable if min(_size(n)) < 44}
    assert not small, small


def _frame(node: ET.Element) -> tuple[float, float, float, float]:
    (f,) = [p for p in node.findall("properties/property") if p.findtext("key") == "frame"]
    return tuple(float(f.findtext(f"value/{k}") or "nan") for k in "xywh")  # type: ignore[return-value]


def _size(node: ET.Element) -> tuple[float, float]:
    return _frame(node)[2:]


def _name(node: ET.Element) -> str:
    return next(p.findtext("value") or "" for p in node.findall("properties/property") if p.findtext("key") == "name")


def test_layout_instruments_are_the_shipped_models() -> None:
    from timbrespace.models.checkpoint import load_checkpoint

    meta = load_checkpoint(ROOT / "models/timbre-gmvae/timbre-gmvae.pt").metadata
    assert tuple(meta["instruments"]) == layouts.INSTRUMENTS
    assert set(layouts.CORNER_SETS[0]) <= set(layouts.INSTRUMENTS)


def test_touchosc_status_display_handles_the_declared_replies() -> None:
    xml = tosc_xml()
    assert BY_PATH["/status"].reply == "/status.reply"
    assert "'/status.reply'" in touchosc.STATUS_SCRIPT and "'/fail'" in touchosc.STATUS_SCRIPT
    assert "onReceiveOSC" in xml


# -- Max ---------------------------------------------------------------------------------------


def test_max_patch_sends_only_declared_messages_in_range() -> None:
    data = json.loads((ROOT / "clients/max/timbrespace.maxpat").read_text())
    patcher = data["patcher"]
    boxes = {b["box"]["id"]: b["box"] for b in patcher["boxes"]}
    into: dict[str, list[tuple[str, int, int]]] = defaultdict(list)  # dst -> (src, outlet, inlet)
    for line in patcher["lines"]:
        (src, outlet), (dst, inlet) = line["patchline"]["source"], line["patchline"]["destination"]
        assert src in boxes and dst in boxes
        into[dst].append((src, outlet, inlet))
    (send,) = [i for i, b in boxes.items() if b.get("text", "").startswith("udpsend ")]
    assert boxes[send]["text"].split()[2] == str(layouts.PORT)
    paths = set()
    menus: dict[str, list[str]] = {}
    for src, _, _ in into[send]:
        box = boxes[src]
        text = box["text"]
        if box["maxclass"] == "message":  # one message, or several separated by commas
            for one in text.split(","):
                path, *args = one.split()
                BY_PATH[path].parse([int(a) if a.isdigit() else a for a in args])
                paths.add(path)
            continue
        if text == "t a b":  # selects the engine (right outlet), then passes the message on
            ((src, _, _),) = into[src]
            box = boxes[src]
            text = box["text"]
        assert text.startswith("prepend /"), text
        path = text.split()[1]
        paths.add(path)
        decl = BY_PATH[path]
        # The widgets feeding this address, by argument position (straight, or through pack/pak).
        feeders = into[src]
        assert len(feeders) == 1
        (up, _, _) = feeders[0]
        widgets: list[tuple[int, str, int]] = []  # (argument index, widget id, widget outlet)
        if boxes[up]["maxclass"] == "newobj" and boxes[up]["text"].split()[0] in {"pack", "pak"}:
            widgets = [(inlet, *_max_widget(w, outlet, boxes, into)) for w, outlet, inlet in into[up]]
        else:
            widgets = [(0, up, feeders[0][1])]
        assert sorted({i for i, _, _ in widgets}) == list(range(len(decl.args))), path
        for i, w, outlet in widgets:
            b = boxes[w]
            if b["maxclass"] == "umenu":  # the middle outlet: the chosen item's text
                assert outlet == 1 and len(decl.args) == 1
                items = [t for t in b["items"] if t != ","]
                for item in items:
                    decl.parse([item])
                menus[path] = items
                continue
            if b["maxclass"] in {"flonum", "number"}:
                lo, hi = b["minimum"], b["maximum"]
            elif b["maxclass"] == "slider":
                assert b["floatoutput"] == 1
                lo, hi = b["min"], b["min"] + b["size"]
            elif b["maxclass"] == "kslider":
                lo, hi = (b["offset"], b["offset"] + b["range"] - 1) if outlet == 0 else (0, 127)
            else:
                raise AssertionError(f"unexpected widget {b['maxclass']}")
            assert in_range(path, i, lo, hi), f"{path} {decl.args[i].name}: [{lo}, {hi}]"
    assert {"/note", "/latent", "/alpha", "/source", "/target", "/patch/load", "/status", "/panic", "/engine",
            "/corners", "/z", "/map"} <= paths
    assert menus == {"/source": list(layouts.INSTRUMENTS), "/target": list(layouts.INSTRUMENTS)}
    assert any(b.get("text", "") == f"udpreceive {maxpatch.REPLY_PORT}" for b in boxes.values())


def _max_widget(box: str, outlet: int, boxes: dict[str, Any],
                into: dict[str, list[tuple[str, int, int]]]) -> tuple[str, int]:
    """The widget behind a value store: [f] <- [t b f] <- the widget (feedback's [t f f] set it too)."""
    while boxes[box].get("text") in ("f", "t b f"):
        feeders = [(src, out) for src, out, inlet in into[box]
                   if boxes[box]["text"] == "t b f" or (inlet == 1 and boxes[src].get("text") == "t b f")]
        ((box, outlet),) = feeders
    return box, outlet


# -- Pure Data ---------------------------------------------------------------------------------


def pd_objects() -> tuple[list[list[str]], dict[int, list[tuple[int, int, int]]]]:
    """The patch's boxes (tokens after '#X') and wires into each box (src, outlet, inlet)."""
    text = (ROOT / "clients/puredata/timbrespace.pd").read_text()
    records = [r.strip() for r in re.split(r"(?<!\\);\n", text) if r.strip()]
    boxes: list[list[str]] = []
    into: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for r in records[1:]:
        tokens = r.split()
        if tokens[1] == "connect":
            a, o, b, i = map(int, tokens[2:6])
            into[b].append((a, o, i))
        else:
            boxes.append(tokens[1:])
    return boxes, into


def test_puredata_patch_formats_only_declared_messages_in_range() -> None:
    boxes, into = pd_objects()
    fmts = {}
    for n, b in enumerate(boxes):
        if b[0] == "obj" and b[3] == "oscformat":
            path = "/" + "/".join(b[4:])
            assert path in BY_PATH, path
            fmts[n] = path
    assert set(fmts.values()) == set(BY_PATH)  # one per declared address
    constants: dict[str, set[str]] = defaultdict(set)
    receivers = {" ".join(b[3:]) for b in boxes if b[0] == "obj" and b[3] == "r"}
    assert {f"r ts{p}" for p in BY_PATH} <= receivers
    for n, path in fmts.items():
        for src, _, _ in into[n]:
            b = boxes[src]
            sources = [boxes[up] for up, _, _ in into[src]] if b[3:5] == ["t", "a"] else [b]  # engine first
            for b in sources:
                if b[0] != "msg":
                    assert b[3] in {"list", "pack", "hsl"}, b  # [r] -> [list] chains; sliders checked below
                    continue
                args = b[3:]
                if args == ["bang"]:
                    args = []
                elif args[0] in {"symbol", "list"}:
                    args = args[1:]
                BY_PATH[path].parse([float(a) if re.fullmatch(r"-?[\d.]+", a) else a for a in args])
                constants[path].add(" ".join(args))
    assert constants["/engine"] == set(layouts.ENGINES) and constants["/map"] == set(layouts.MAPS)
    assert set(layouts.INSTRUMENTS) <= constants["/source"] and set(layouts.INSTRUMENTS) <= constants["/target"]
    assert constants["/corners"] == {" ".join(c) for c in layouts.CORNER_SETS}
    # Sliders: their range lies inside that of the argument they end up as.
    for n, b in enumerate(boxes):
        if b[0] == "obj" and b[3] == "hsl":
            lo, hi = float(b[6]), float(b[7])
            path, index = _pd_downstream(n, boxes, into, fmts)
            assert in_range(path, index, lo, hi), (b, path, index)


def _pd_downstream(n: int, boxes: list[list[str]], into: dict[int, list[tuple[int, int, int]]],
                   fmts: dict[int, str]) -> tuple[str, int]:
    out: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for dst, wires in into.items():
        for src, _, inlet in wires:
            out[src].append((dst, inlet))
    index, todo, seen = 0, [n], set()
    while todo:
        cur = todo.pop()
        seen.add(cur)
        for dst, inlet in out[cur]:
            if dst in fmts:
                return fmts[dst], index
            if boxes[dst][3] == "pack":
                index = max(index, inlet)
            elif boxes[dst][3:5] == ["list", "prepend"]:  # its atoms go first
                index += len(boxes[dst][5:])
            if dst not in seen:
                todo.append(dst)
    raise AssertionError(f"hsl {n} reaches no oscformat")


def test_puredata_generator_escapes_dollars() -> None:
    assert "connect \\$1 \\$2" in puredata.render_text()


# -- the buttons select the engine they play (the server may have been left on the other) -------


def test_preset_and_instrument_buttons_select_their_engine_first() -> None:
    # Max: each preset message box sends /engine patch before its message; the instrument menus
    # go through [t a b], whose bang sends /engine timbre first.
    data = json.loads((ROOT / "clients/max/timbrespace.maxpat").read_text())
    texts = [b["box"].get("text", "") for b in data["patcher"]["boxes"]]
    for path in ("/patch/load", "/source", "/target"):
        for preset in layouts.PRESETS:
            assert f"/engine patch, {path} {preset}" in texts
    assert texts.count("t a b") == 2 and "/engine timbre" in texts
    # Pure Data: every preset and instrument message box feeds a [t a b] whose bang selects the engine.
    boxes, into = pd_objects()
    for n, b in enumerate(boxes):
        if b[0] == "msg" and b[3] == "symbol" and (b[4] in layouts.PRESETS or b[4] in layouts.INSTRUMENTS):
            (trig,) = [d for d, wires in into.items() for src, _, _ in wires if src == n]
            assert boxes[trig][3:] == ["t", "a", "b"], b
            (sel,) = [d for d, wires in into.items() for src, out, _ in wires if src == trig and out == 1]
            assert boxes[sel][3:] == ["symbol", "patch" if b[4] in layouts.PRESETS else "timbre"]
    # TouchOSC: each preset (instrument) button sends /engine patch (timbre) first, then its message.
    root = ET.fromstring(zlib.decompress((ROOT / "clients/touchosc/timbrespace.tosc").read_bytes()))
    for node in root.iter("node"):
        oscs = node.findall("./messages/osc")
        sent = [[p.findtext("value") for p in o.iter("partial")] for o in oscs]
        names = [s[1] for s in sent if s[0] in ("/source", "/target", "/patch/load") and len(s) > 1]
        if not names:
            continue
        engine = "patch" if names[0] in layouts.PRESETS else "timbre"
        assert sent[0] == ["/engine", engine], sent


# -- presets the layouts offer exist on a real server --------------------------------------------


def test_layout_presets_load_on_the_server(server: ServerProc) -> None:
    c = server.client()
    for preset in layouts.PRESETS:
        reply = c.request("/patch/load", preset)
        assert reply.params[1] == preset
    c.close()


def test_an_undeclared_constant_would_be_caught() -> None:
    with pytest.raises(InvalidMessage):
        BY_PATH["/note"].parse([200.0, 100.0])


def test_max_reply_port_is_out_of_the_servers_way() -> None:
    # Issue 19: 57131 is where a second server on the host listens; udpreceive must not take it.
    assert maxpatch.REPLY_PORT not in range(layouts.PORT, layouts.PORT + 10)
    assert maxpatch.REPLY_PORT not in (57110, 57120)  # scsynth, sclang
    assert f"[udpreceive {maxpatch.REPLY_PORT}]" in (ROOT / "clients/max/README.md").read_text()


def test_puredata_canvas_holds_every_box() -> None:
    # Issue 19: the /z sliders sat below the bottom of the window the patch opens in.
    text = (ROOT / "clients/puredata/timbrespace.pd").read_text()
    width, height = map(int, text.split(";", 1)[0].split()[4:6])
    for m in re.finditer(r"^#X (?:obj|msg|text) (\d+) (\d+) (\S+)", text, re.M):
        x, y = int(m[1]), int(m[2])
        assert x + (160 if m[3] == "hsl" else 40) <= width and y + 30 <= height, m[0]


# -- following the server (sessions, issue 20) ----------------------------------------------------


def test_layouts_renew_their_subscription_well_inside_its_lifetime() -> None:
    from timbrespace.session.feedback import UDP_SUBSCRIPTION_S

    assert 2 * layouts.RENEW_S < UDP_SUBSCRIPTION_S  # one lost renewal ends nothing
    for who, name in layouts.PLAYER.items():
        BY_PATH["/hello"].parse([name])  # a name the server takes
        assert who in {"touchosc", "max", "puredata"}


def test_puredata_patch_joins_subscribes_and_renews() -> None:
    boxes, into = pd_objects()
    texts = [" ".join(b[3:]) for b in boxes]
    assert f"\\; ts/hello {layouts.PLAYER['puredata']} \\; ts/notify 1" in texts
    assert "\\; ts/notify 0" in texts and "\\; ts/bye bang" in texts
    # The renewal: a [delay RENEW_S] that restarts itself and sends 1 to /notify's formatter.
    (delay,) = [n for n, t in enumerate(texts) if t.startswith("delay ")]
    assert float(texts[delay].split()[1]) == layouts.RENEW_S * 1000
    # Feedback reaches the sliders as "set" (shown, never sent back) on their receive names.
    sends = {t.split()[1] for t in texts if t.startswith("s ts-ui/")}
    assert {"ts-ui/x", "ts-ui/y", "ts-ui/alpha"} | {f"ts-ui/z{i}" for i in range(layouts.Z_DIMS)} <= sends
    for n, t in enumerate(texts):
        if t.startswith("s ts-ui/") and t.split()[1] not in {"ts-ui/point", "ts-ui/others"}:
            ((src, _, _),) = into[n]
            assert texts[src] == "set \\$1", t


def test_max_patch_follows_the_server() -> None:
    data = json.loads((ROOT / "clients/max/timbrespace.maxpat").read_text())
    boxes = {b["box"]["id"]: b["box"] for b in data["patcher"]["boxes"]}
    texts = {i: b.get("text", "") for i, b in boxes.items()}
    wires = [(ln["patchline"]["source"][0], ln["patchline"]["destination"][0]) for ln in data["patcher"]["lines"]]
    (send,) = [i for i, t in texts.items() if t.startswith("udpsend ")]
    (recv,) = [i for i, t in texts.items() if t.startswith("udpreceive ")]
    sent = {texts[a] for a, b in wires if b == send}
    assert {f"/hello {layouts.PLAYER['max']}", "/notify 1", "/notify 0"} <= sent
    (metro,) = [i for i, t in texts.items() if t.startswith("metro ")]
    assert float(texts[metro].split()[1]) == layouts.RENEW_S * 1000
    assert any(texts[b] == "/notify 1" for a, b in wires if a == metro)
    # Feedback from udpreceive reaches the map boxes and the alpha slider as "set" (never sent back).
    (route,) = [b for a, b in wires if a == recv and texts[b].startswith("route ")]
    assert texts[route].split()[1:] == ["/latent", "/alpha"]
    shown = {boxes[b]["maxclass"] for a, b in wires if texts[a] == "set $1"}
    assert shown == {"flonum", "slider"}


def test_touchosc_join_button_and_controls_that_follow_feedback() -> None:
    received: dict[str, set[str]] = defaultdict(set)
    for kind, name, osc in tosc_messages():
        path = "".join(p.findtext("value") or "" for p in osc.iterfind("path/partial"))
        assert osc.findtext("feedback") == "0", name  # a value set by the server is never sent back
        if osc.findtext("receive") == "1":
            received[path].add(kind)
    # Controls receive the address they send: the pad, alpha and every /z fader (matched by index).
    assert received == {"/latent": {"XY"}, "/alpha": {"FADER"}, "/z": {"FADER"}}
    root = ET.fromstring(tosc_xml())
    (join,) = [n for n in root.iter("node") if _name(n) == "join"]
    sent = [[p.findtext("value") for p in o.iter("partial")] for o in join.findall("messages/osc")]
    assert sent == [["/hello", layouts.PLAYER["touchosc"]], ["/notify", "1"]]
    (script,) = [p.findtext("value") for p in join.iter("property") if p.findtext("key") == "script"]
    assert script == touchosc.RENEW_SCRIPT and f"{layouts.RENEW_S * 1000:g}" in script
    assert "sendOSC('/notify', 1)" in script


def test_touchosc_layout_has_a_layer_selector() -> None:
    from timbrespace import config

    layers = {}
    for _, name, osc in tosc_messages():
        path = "".join(p.findtext("value") or "" for p in osc.iterfind("path/partial"))
        if path == "/layer":
            layers[name] = [p.findtext("value") for p in osc.iterfind("arguments/partial")]
    want = min(len(config.Config().layers), 4)
    assert want == layouts.LAYERS
    assert layers == {f"layer_{i}": [str(i)] for i in range(want)}


def test_max_patch_has_a_layer_choice() -> None:
    boxes = {b["box"]["id"]: b["box"] for b in json.loads(maxpatch.render())["patcher"]["boxes"]}
    texts = {b.get("text", "") for b in boxes.values() if b.get("maxclass") == "message"}
    assert {f"/layer {n}" for n in range(layouts.LAYERS)} <= texts
