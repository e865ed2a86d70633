"""The /play page in a real browser: Debian's chromium, headless, driven by Playwright against a real
server; touches are real touch events (CDP Input.dispatchTouchEvent), read back from the server."""

from __future__ import annotations

import os
import shutil
import signal
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import OscClient, ServerProc, start_server

CHROMIUM = shutil.which("chromium")
try:
    from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
except ImportError:  # the dev extra not installed
    sync_playwright = None  # type: ignore[assignment]

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (`make deps` installs it)"),
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed (the dev extra has it)"),
]

#: Seconds a page or the server is given to show what a test waits for.
WAIT_S = 10.0


def _http_base(server: ServerProc) -> str:
    line = next(line for line in server.lines if " ready: " in line)
    host_port = line.split(" http://", 1)[1].split("/", 1)[0]
    return f"http://{host_port}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert sync_playwright is not None and CHROMIUM is not None
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)  # never `playwright install`: the system browser
        yield b
        b.close()


class Tab:
    """One /play page in its own browser context (its own storage, so its own player), with what it
    logged and every URL it asked for."""

    def __init__(self, browser: Browser, base: str, width: int = 900, height: int = 600, mobile: bool = False) -> None:
        self.context: BrowserContext = browser.new_context(viewport={"width": width, "height": height},
                                                           has_touch=True, is_mobile=mobile)
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.cdp = self.context.new_cdp_session(self.page)
        self.page.goto(base + "/play")
        self.page.wait_for_selector("body[data-link=open]", timeout=WAIT_S * 1000)
        self.name: str = self.page.evaluate("() => play.name")

    def until(self, script: str, cond: Callable[[Any], bool], what: str) -> Any:
        """``script``'s value polled until ``cond`` holds (the page's CSP forbids eval: no wait_for_function)."""
        deadline = time.monotonic() + WAIT_S
        while True:
            value = self.page.evaluate(script)
            if cond(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: still {value!r} after {WAIT_S} s")
            time.sleep(0.02)

    def touch(self, kind: str, points: list[tuple[float, float]], ids: list[int] | None = None) -> None:
        """A real touch event: ``kind`` touchStart/touchMove/touchEnd, one (x, y) in CSS px per finger,
        numbered by ``ids`` (default: in order). A touchEnd with no points lifts every finger, one
        with points lifts those only."""
        self.cdp.send("Input.dispatchTouchEvent", {
            "type": kind, "touchPoints": [{"x": x, "y": y, "id": i}
                                          for i, (x, y) in zip(ids or range(len(points)), points, strict=True)]})

    def on(self, selector: str, fx: float, fy: float) -> tuple[float, float]:
        """The CSS pixel at fractions (fx, fy) of an element's box, from its top left."""
        box = self.page.locator(selector).first.bounding_box()
        assert box is not None, selector
        return box["x"] + fx * box["width"], box["y"] + fy * box["height"]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser: Browser, server: ServerProc) -> Iterator[Tab]:
    t = Tab(browser, _http_base(server))
    yield t
    t.close()


def _watcher(server: ServerProc) -> OscClient:
    """A UDP client subscribed to layer 0's feedback."""
    c = server.client()
    c.request("/hello", "watcher")
    c.send("/notify", 1)
    c.expect("/done")
    return c


def _feedback_until(c: OscClient, address: str, cond: Callable[[list[Any]], bool]) -> list[Any]:
    deadline = time.monotonic() + WAIT_S
    seen: list[Any] = []
    while time.monotonic() < deadline:
        try:
            msg = c.recv(max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            break
        if msg.address == address:
            seen.append(msg.params)
            if cond(msg.params):
                return msg.params
    raise AssertionError(f"no {address} as wanted within {WAIT_S} s; saw {seen[-5:]}")


def _drag_is_heard(t: Tab, server: ServerProc, x: float, y: float) -> None:
    """A finger down mid-height at ``x`` and dragged to (x, y) on the pad (page coordinates, y
    down) moves the server's point to (x, 1 - y), as a subscriber hears it."""
    with _watcher(server) as w:
        t.touch("touchStart", [t.on("#pad", x, 0.5)])
        t.touch("touchMove", [t.on("#pad", x, y)])
        _feedback_until(w, "/latent", lambda p: abs(p[0] - x) < 0.01 and abs(p[1] - (1.0 - y)) < 0.01)
        t.touch("touchEnd", [])


def test_the_page_loads_with_no_error_and_asks_no_other_host(tab: Tab, server: ServerProc) -> None:
    # Everything it offers has arrived: the presets paged in over /patch/list, the voices meter live.
    total = tab.until("() => play.panel.presets.length", lambda n: n > 0, "presets listed")
    assert total > 100  # the factory banks
    tab.until("() => document.getElementById('meter').textContent", lambda t: "voices" in t, "meter")
    engines = tab.page.evaluate("() => [...document.querySelectorAll('#engines button')].map(b => b.textContent)")
    assert engines == ["patch", "timbre"]  # from the namespace's /engine VALS
    assert len(tab.page.evaluate("() => play.panel.instruments")) == 12
    # The picture behind the pad: a dot where each preset sits on the patch map.
    assert tab.page.evaluate("() => play.pad.dots.length") == total
    assert tab.errors == []
    own = urllib.parse.urlsplit(_http_base(server)).netloc
    assert {urllib.parse.urlsplit(u).netloc for u in tab.requests if not u.startswith("data:")} == {own}


#: What a finger uses: each at least 44 CSS px each way, and no two on top of each other.
TARGETS = "button, input, .key.white, #pad"
BLOCKS = ["#pad", "#source", "#target", "#alpha", "#engines", "#layers", "#meter", "#oct-down", "#oct-up", "#keys"]


@pytest.mark.parametrize("size", [(360, 740), (740, 360), (320, 568), (568, 320), (1024, 768), (768, 1024)],
                         ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_control_fits_phones_and_tablets_upright_and_on_their_side(
        browser: Browser, server: ServerProc, size: tuple[int, int]) -> None:
    t = Tab(browser, _http_base(server), *size, mobile=True)
    try:
        small = t.page.evaluate(f"""() => [...document.querySelectorAll('{TARGETS}')]
            .filter(e => e.offsetParent !== null).map(e => [e.id || e.className, e.getBoundingClientRect()])
            .filter(([, r]) => r.width < 44 || r.height < 44).map(([n, r]) => [n, r.width, r.height])""")
        assert small == []
        # The page is the screen: nothing to scroll to, nothing laid over another control.
        assert t.page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.scrollHeight]") \
            == list(size)
        boxes = {sel: t.page.locator(sel).bounding_box() for sel in BLOCKS}
        shown = {sel: b for sel, b in boxes.items() if b is not None and b["width"] > 0}
        assert set(shown) == set(BLOCKS)
        for i, a in enumerate(BLOCKS):
            for b in BLOCKS[i + 1:]:
                ra, rb = shown[a], shown[b]
                w = min(ra["x"] + ra["width"], rb["x"] + rb["width"]) - max(ra["x"], rb["x"])
                h = min(ra["y"] + ra["height"], rb["y"] + rb["height"]) - max(ra["y"], rb["y"])
                assert w <= 0.5 or h <= 0.5, f"{a} overlaps {b} at {size}"
    finally:
        t.close()


def test_dragging_on_the_pad_moves_the_servers_point(tab: Tab, server: ServerProc) -> None:
    with _watcher(server) as w:
        box = tab.page.locator("#pad").bounding_box()
        assert box is not None
        px = 1.0 / min(box["width"], box["height"])  # one pixel of the map: where a finger can be
        start, end = tab.on("#pad", 0.5, 0.5), tab.on("#pad", 0.25, 0.75)
        tab.touch("touchStart", [start])
        for i in range(1, 11):
            f = i / 10
            tab.touch("touchMove", [(start[0] + f * (end[0] - start[0]), start[1] + f * (end[1] - start[1]))])
        # The map's y is up: 3/4 of the way down the pad is y = 0.25.
        got = _feedback_until(w, "/latent", lambda p: abs(p[0] - 0.25) < px and abs(p[1] - 0.25) < px)
        # A second finger down and moving takes the point where it goes.
        second = tab.on("#pad", 0.875, 0.125)
        tab.touch("touchMove", [end, second])
        _feedback_until(w, "/latent", lambda p: abs(p[0] - 0.875) < px and abs(p[1] - 0.875) < px)
        tab.touch("touchEnd", [])
        # Others see the page's finger as its cursor.
        cursor = _feedback_until(w, "/cursor", lambda p: p[1] == tab.name and abs(p[2] - 0.875) < px)
        assert got and cursor
    assert tab.errors == []


def test_a_key_sounds_a_note_and_its_release_stops_it(tab: Tab, server: ServerProc) -> None:
    with server.client() as c:
        c.status_until(lambda st: st["voices"] == 0, timeout=WAIT_S)
        c4, e4 = tab.on('.key[data-pitch="60"]', 0.5, 0.9), tab.on('.key[data-pitch="64"]', 0.5, 0.9)
        tab.touch("touchStart", [c4])
        c.status_until(lambda st: st["voices"] >= 1, timeout=WAIT_S)
        tab.touch("touchStart", [c4, e4])  # a second finger: a chord
        c.status_until(lambda st: st["voices"] >= 2, timeout=WAIT_S)
        # The page's own meter shows them (it polls /status).
        tab.until("() => Number(document.getElementById('meter').dataset.voices)", lambda v: v >= 2, "meter")
        # ... and the output level while the chord sounds (the server's held peak, in dBFS).
        tab.until("() => Number(document.getElementById('meter').dataset.level)", lambda v: -60 < v <= 0, "level")
        tab.touch("touchEnd", [])
        c.status_until(lambda st: st["voices"] == 0, timeout=WAIT_S)
    assert tab.errors == []


def test_each_finger_on_the_pad_is_a_voice_at_its_own_point(tab: Tab, server: ServerProc) -> None:
    """Two fingers under the timbre engine: two voices, each at its own point (as another player is
    shown them, /cursor/touch); lifting one releases its voice only (on layer 3: the others play 0 and 2)."""
    tab.touch("touchStart", [tab.on('#layers button[data-layer="3"]', 0.5, 0.5)])
    tab.touch("touchEnd", [])
    tab.until("() => play.panel.layer", lambda n: n == 3, "the page on layer 3 (/layer.reply)")
    tab.page.click("#engines button[data-engine=timbre]")
    tab.until("() => play.panel.engine", lambda e: e == "timbre", "the timbre engine heard")
    with server.client() as w, server.client() as c:
        w.request("/hello", "finger watcher")
        w.request("/layer", 3)
        w.send("/notify", 1)
        w.expect("/done")
        c.status_until(lambda st: st["voices"] == 0, timeout=WAIT_S)
        box = tab.page.locator("#pad").bounding_box()
        assert box is not None
        px = 1.0 / min(box["width"], box["height"])  # one pixel of the map: where a finger can be

        def finger(n: int, x: float, y: float, down: int) -> Callable[[list[Any]], bool]:
            return lambda p: (p[1], p[2], p[5]) == (tab.name, n, down) and abs(p[3] - x) < px and abs(p[4] - y) < px

        one, two = tab.on("#pad", 0.25, 0.25), tab.on("#pad", 0.75, 0.75)
        tab.touch("touchStart", [one])
        tab.touch("touchStart", [one, two])
        c.status_until(lambda st: st["voices"] == 2, timeout=WAIT_S)
        # The map's y is up: a quarter of the way down the pad is y = 0.75.
        _feedback_until(w, "/cursor/touch", finger(0, 0.25, 0.75, 1))
        _feedback_until(w, "/cursor/touch", finger(1, 0.75, 0.25, 1))
        tab.touch("touchMove", [one, tab.on("#pad", 0.5, 0.5)])  # a finger moves: its voice goes with it
        _feedback_until(w, "/cursor/touch", finger(1, 0.5, 0.5, 1))
        tab.touch("touchEnd", [one], ids=[0])  # the first finger lifts
        _feedback_until(w, "/cursor/touch", finger(0, 0.25, 0.75, 0))
        c.status_until(lambda st: st["voices"] == 1, timeout=WAIT_S)
        tab.touch("touchEnd", [])
        c.status_until(lambda st: st["voices"] == 0, timeout=WAIT_S)
    assert tab.errors == []


def test_the_controls_set_the_layer_they_play(tab: Tab, server: ServerProc) -> None:
    """Layer, engine, source, alpha and the pad, as a finger sets them, read back from the namespace
    (on layer 2: the other tests play layer 0)."""
    import json
    import urllib.request

    def value(path: str) -> list[Any]:
        with urllib.request.urlopen(f"{_http_base(server)}{path}?VALUE", timeout=10) as r:
            return list(json.loads(r.read())["VALUE"])

    def until(path: str, cond: Callable[[list[Any]], bool]) -> list[Any]:
        deadline = time.monotonic() + WAIT_S
        while not cond(got := value(path)):
            assert time.monotonic() < deadline, f"{path} is still {got}"
            time.sleep(0.02)
        return got

    tab.touch("touchStart", [tab.on('#layers button[data-layer="2"]', 0.5, 0.5)])
    tab.touch("touchEnd", [])
    tab.until("() => play.panel.layer", lambda n: n == 2, "the page on layer 2 (/layer.reply)")
    # Under the patch engine (one patch per layer) a finger moves the layer's point as it plays.
    tab.touch("touchStart", [tab.on("#pad", 0.25, 0.5)])
    tab.touch("touchMove", [tab.on("#pad", 0.25, 0.25)])
    tab.touch("touchEnd", [])
    until("/layer/2/latent", lambda v: abs(v[0] - 0.25) < 0.01 and abs(v[1] - 0.75) < 0.01)
    # The pickers offer every preset by name (what a typed name is searched among) and take one.
    options = "() => [...document.querySelectorAll('#items option')].map(o => o.value)"
    presets = tab.until(options, lambda o: len(o) > 100, "the presets in the pickers")
    assert presets == tab.page.evaluate("() => play.panel.presets")
    tab.page.fill("#target", presets[7])
    tab.page.dispatch_event("#target", "change")
    until("/layer/2/target", lambda v: v == [presets[7]])
    tab.page.click("#engines button[data-engine=timbre]")
    until("/layer/2/engine", lambda v: v == ["timbre"])
    # The timbre engine's map has names on it: its corners, or its instruments where it places them.
    assert tab.until("() => play.pad.labels.length", lambda n: n in (4, 12), "names over the pad")
    assert tab.until(options, lambda o: len(o) == 12, "the instruments in the pickers")[0] != presets[0]
    tab.page.fill("#source", "violin")
    tab.page.dispatch_event("#source", "change")
    until("/layer/2/source", lambda v: v == ["violin"])
    tab.page.evaluate("() => { const a = document.getElementById('alpha'); a.value = '0.375'; "
                      "a.dispatchEvent(new Event('input')); }")
    until("/layer/2/alpha", lambda v: abs(v[0] - 0.375) < 1e-6)
    assert value("/layer/0/engine") == ["patch"]  # layer 0 untouched
    assert tab.errors == []


def test_another_players_moves_show_as_a_cursor_on_the_page(tab: Tab, browser: Browser, server: ServerProc) -> None:
    cursor = "() => [...play.pad.cursors.values()]"

    def at(name: str, x: float, y: float) -> Callable[[Any], bool]:
        return lambda cs: any(c["name"] == name and abs(c["x"] - x) < 1e-3 and abs(c["y"] - y) < 1e-3 for c in cs)

    with server.client() as c:
        c.request("/hello", "osc player")
        c.send("/latent", 0.2, 0.7)
        c.sync()
        tab.until(cursor, at("osc player", 0.2, 0.7), "the OSC player's cursor")
        c.send("/latent", 0.6, 0.3)
        tab.until(cursor, at("osc player", 0.6, 0.3), "the OSC player's cursor, moved")
        c.send("/bye")
        tab.until(cursor, lambda cs: all(x["name"] != "osc player" for x in cs), "the cursor gone with its player")
    # A second page sees the first page's finger.
    other = Tab(browser, _http_base(server))
    try:
        assert other.name != tab.name
        tab.touch("touchStart", [tab.on("#pad", 0.5, 0.25)])
        tab.touch("touchMove", [tab.on("#pad", 0.75, 0.25)])
        other.until(cursor, lambda cs: any(x["name"] == tab.name and abs(x["x"] - 0.75) < 0.01 for x in cs),
                    "the first page's cursor on the second")
        tab.touch("touchEnd", [])
    finally:
        other.close()
    assert tab.errors == [] and other.errors == []


def test_the_page_reconnects_after_the_server_restarts(browser: Browser, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = start_server(tmp_path / "a")
    port = int(_http_base(first).rsplit(":", 1)[1])
    t = Tab(browser, _http_base(first))
    second: ServerProc | None = None
    try:
        assert first.stop() == 0
        t.page.wait_for_selector("body[data-link=down]", timeout=WAIT_S * 1000)
        second = start_server(tmp_path / "b", network={"http_port": port})
        t.page.wait_for_selector("body[data-link=open]", timeout=WAIT_S * 1000)
        # The page plays the new server: a touch moves its point.
        _drag_is_heard(t, second, 0.125, 0.25)
    finally:
        t.close()
        first.stop()
        if second is not None:
            second.stop()


def test_the_page_gives_up_a_silent_server_and_comes_back(browser: Browser, tmp_path: Path) -> None:
    """A socket still open but unanswered (a frozen server, or a network gone without a close) is
    given up after 5 s of silence, and the page reconnects once the server answers again."""
    s = start_server(tmp_path)
    t = Tab(browser, _http_base(s))
    try:
        os.kill(s.proc.pid, signal.SIGSTOP)  # the control process only: its sockets stay open
        try:
            t.page.wait_for_selector("body:not([data-link=open])", timeout=3 * WAIT_S * 1000)
        finally:
            os.kill(s.proc.pid, signal.SIGCONT)
        t.page.wait_for_selector("body[data-link=open]", timeout=3 * WAIT_S * 1000)
        assert t.page.evaluate("() => play.link.dropped") >= 1
        _drag_is_heard(t, s, 0.625, 0.375)
    finally:
        t.close()
        s.stop()


def test_the_readme_picture_is_made_by_its_script(browser: Browser, server: ServerProc, tmp_path: Path) -> None:
    """``python -m timbrespace.web.screenshot`` (docs/play.png) against this server, on layer 1 (the
    others play 0, 2 and 3): the page shows what the picture is for before it is taken."""
    from timbrespace.web import screenshot

    out = tmp_path / "play.png"
    shown = screenshot.shoot(browser, _http_base(server), (server.host, server.port), out, layer=1)
    others = sum(len(f) for _, _, f in screenshot.PLAYERS)
    assert shown["layer"] == 1 and shown["cursors"] == len(screenshot.PLAYERS) and shown["others"] == others
    assert shown["fingers"] == len(screenshot.PAD_FINGERS) and shown["keys"] == len(screenshot.KEYS)
    assert shown["regions"] is not None  # the timbre engine's learned map, coloured by instrument
    # Every finger and key a voice of the timbre engine.
    assert shown["voices"] >= len(screenshot.PAD_FINGERS) + len(screenshot.KEYS) + others
    png = out.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == screenshot.SIZE
    with server.client() as c:  # the players left, and their fingers and the page's with them
        c.status_until(lambda st: st["voices"] == 0, timeout=WAIT_S)

