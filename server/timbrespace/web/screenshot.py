"""The README's picture of the ``/play`` page (``docs/play.png``), made again by one command::

    python -m timbrespace.web.screenshot docs/play.png     # or: make screenshot

It starts a server of its own on loopback (as ``timbrespace bench`` does: null audio, no zeroconf,
no saved state), has two OSC players join it (``ann`` sets the timbre engine on its learned map,
a transfer from trumpet to violin, and her point; ``bo`` his point and two fingers on the map),
opens the page in headless chromium (Debian's ``chromium``, driven by Playwright's Python API:
never ``playwright install``) and puts three fingers on the pad and a chord on the keyboard with
real touch events, then takes the picture once the page shows all of it: the instruments'
regions, the others' cursors and fingers, and a voice for every finger and key. :func:`shoot` is
the part after the server, which the tests run against theirs.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from timbrespace.protocol.encode import encode_message

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

__all__ = ["SIZE", "main", "shoot"]

#: The picture's size in CSS pixels: a tablet on its side.
SIZE = (1000, 640)
#: Seconds the page is given to show what the picture needs.
WAIT_S = 20.0
#: The other players: a name, the point it moved to and its fingers down (x, y each).
PLAYERS: tuple[tuple[str, tuple[float, float], tuple[tuple[float, float], ...]], ...] = (
    ("ann", (0.3, 0.65), ()),
    ("bo", (0.72, 0.4), ((0.8, 0.25), (0.6, 0.15))),
)
#: What the first player sets before it moves: the timbre engine (each finger sounds its own
#: point), its learned map, and the two ends of a transfer with the way between them.
STATE = (("/engine", ("timbre",)), ("/map", ("learned",)), ("/source", ("trumpet",)), ("/target", ("violin",)),
         ("/alpha", (0.35,)))
#: The page's own fingers on the pad (fractions of its box from its top left) and keys held.
PAD_FINGERS = ((0.3, 0.62), (0.66, 0.72), (0.5, 0.5))
KEYS = (60, 64, 67)
#: What the page shows, as a JS function: checked before the picture, returned, named in errors.
SHOWN = """() => ({presets: play.pad.dots.length, cursors: play.pad.cursors.size, others: play.pad.others.size,
    fingers: play.pad.fingers.size, keys: play.keys.held.size, layer: play.panel.layer,
    regions: play.pad.regions && [play.pad.regions.width, play.pad.regions.height],
    voices: Number(document.getElementById('meter').dataset.voices)})"""


@contextmanager
def _players(osc: tuple[str, int], layer: int) -> Iterator[None]:
    """:data:`PLAYERS` joined over UDP on ``layer`` and placed; they leave (``/bye``) at the end."""
    socks = []
    try:
        for k, (name, point, fingers) in enumerate(PLAYERS):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(s)
            s.connect(osc)
            s.send(encode_message("/hello", (name,)))
            s.send(encode_message("/layer", (layer,)))
            for address, args in STATE if k == 0 else ():
                s.send(encode_message(address, args))
            s.send(encode_message("/latent", point))
            for i, xy in enumerate(fingers):
                s.send(encode_message("/touch", (i, *xy, 48 + 7 * i, 80)))
        yield
    finally:
        for s in socks:
            s.send(encode_message("/bye"))
            s.close()


def _until(page: Page, script: str, what: str) -> None:
    """Poll ``script`` (a JS function) until it is true (the page's CSP forbids wait_for_function)."""
    deadline = time.monotonic() + WAIT_S
    while not page.evaluate(script):
        if time.monotonic() > deadline:
            raise RuntimeError(f"screenshot: the page never showed {what} within {WAIT_S:.0f} s: "
                               f"it shows {page.evaluate(SHOWN)}")
        time.sleep(0.05)


def shoot(browser: Browser, base: str, osc: tuple[str, int], out: Path, layer: int = 0) -> dict[str, Any]:
    """The page of the server at ``base`` (its HTTP URL; ``osc``: its UDP host and port) as a PNG
    at ``out``, playing ``layer`` with the other players and fingers down; returns what the page
    showed (:data:`SHOWN`)."""
    context = browser.new_context(viewport={"width": SIZE[0], "height": SIZE[1]}, has_touch=True)
    try:
        page = context.new_page()
        page.goto(base + "/play")
        page.wait_for_selector("body[data-link=open]", timeout=WAIT_S * 1000)
        _until(page, "() => play.pad.dots.length > 0 && play.panel.presets.length > 0", "the presets")
        if layer != 0:
            page.click(f'#layers button[data-layer="{layer}"]')
            _until(page, f"() => play.panel.layer === {layer}", f"layer {layer}")
        with _players(osc, layer):
            others = sum(len(f) for _, _, f in PLAYERS)
            _until(page, f"() => play.pad.cursors.size >= {len(PLAYERS)} && play.pad.others.size >= {others}"
                   " && play.panel.engine === 'timbre' && play.pad.regions !== null",
                   "the other players' cursors and fingers on the timbre engine's learned map")
            cdp = context.new_cdp_session(page)
            pad = page.locator("#pad").bounding_box()
            assert pad is not None
            points = [(pad["x"] + fx * pad["width"], pad["y"] + fy * pad["height"]) for fx, fy in PAD_FINGERS]
            for pitch in KEYS:
                key = page.locator(f'.key[data-pitch="{pitch}"]').bounding_box()
                assert key is not None, pitch
                points.append((key["x"] + key["width"] / 2, key["y"] + 0.6 * key["height"]))
            cdp.send("Input.dispatchTouchEvent", {
                "type": "touchStart", "touchPoints": [{"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)]})
            voices = len(PAD_FINGERS) + len(KEYS) + others  # the timbre engine: a voice each
            _until(page, f"() => play.pad.fingers.size === {len(PAD_FINGERS)} && play.keys.held.size === {len(KEYS)}"
                   f" && Number(document.getElementById('meter').dataset.voices) >= {voices}",
                   "the fingers down and their voices")
            time.sleep(0.2)  # a frame or two: the canvas drawn with all of it
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
            shown = page.evaluate(SHOWN)
            cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        return dict(shown)
    finally:
        context.close()


def main(argv: list[str] | None = None) -> int:
    """Start a server, shoot its page to the path given (default ``docs/play.png``)."""
    from timbrespace import config
    from timbrespace.bench_live import live_server
    from timbrespace.bench_web import _free_port

    ap = argparse.ArgumentParser(prog="python -m timbrespace.web.screenshot", description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", type=Path, default=Path("docs/play.png"), help="the PNG to write")
    ap.add_argument("--config", type=Path, help="the server's config (its models and banks)")
    a = ap.parse_args(argv)
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("screenshot: Debian's chromium is not installed (`make deps` installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise SystemExit("screenshot: playwright is not installed (the dev extra has it)") from None
    http_port = _free_port()
    network = {"host": "127.0.0.1", "port": 0, "zeroconf": False, "http_port": http_port}
    cfg = config.load(a.config)
    # Room for every finger and key down at once.
    audio = {"backend": "null", "sample_rate": cfg.audio.sample_rate, "block_size": cfg.audio.block_size,
             "polyphony": 16}  # the patch engine's; the timbre engine's voices are its own
    with live_server(cfg, {"network": network, "audio": audio}) as (host, port, _), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        try:
            shown = shoot(browser, f"http://127.0.0.1:{http_port}", (host, port), a.out)
        finally:
            browser.close()
    print(f"{a.out}: {SIZE[0]}x{SIZE[1]}, {shown['cursors']} other players, {shown['others']} of their fingers, "
          f"{shown['fingers']} fingers on the pad and {shown['keys']} keys down, {shown['voices']} voices")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
