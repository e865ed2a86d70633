"""The web side's figures for ``timbrespace bench``: the OSCQuery HTTP server's request rate, and a
touch on the ``/play`` page to the audio block, through the WebSocket.

- HTTP: clients on keep-alive connections ask ``GET /`` (the whole namespace, every layer's live
  values) and ``GET /latent?VALUE`` back to back for a few seconds; requests answered per second.
- Touch: the page in headless chromium (Debian's ``chromium``, driven by Playwright, when both are
  installed) against a fresh server, a finger dragged on the pad by real touch events at 60 a
  second, in strokes of 30 moves with a pause after each. Each move's touch to the audio block
  that applied it, joined move by move: the page keeps, for each send, the time from the touch
  event's time stamp to its WebSocket send (the browser's input pipeline); the audio process keeps,
  for each map point it applies, the time from the WebSocket frame's arrival to the block
  (``/status/latency``, oldest first; on a fresh server only the page's moves fill it). In each
  pause both counts are read once they have stopped moving: a stroke whose sends and latencies
  are as many is joined one to one (the n-th send with the n-th latency); one where two moves met
  in one block's mailbox is skipped and counted, and the strokes after it are half as long (down to
  two moves): on a loaded host moves bunch up, and a long stroke then never joins. What lies
  between, one loopback write and the WebSocket frame's parse, is not in either part.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import time
from typing import Any

import numpy as np

from timbrespace.bench_live import live_server, request, status
from timbrespace.config import Config
from timbrespace.protocol.addresses import LATENCY_REPLY

__all__ = ["bench_web", "markdown_rows"]

#: Keep-alive HTTP connections asking at once (under the server's 16 per host).
HTTP_CLIENTS = 8
#: Touch events a second: a finger as a phone's screen reports it.
TOUCH_RATE = 60.0
#: Moves in one stroke, between the pauses in which the page's sends and the audio's latencies are
#: read and joined (within what one /status/latency reply carries).
STROKE = 30
#: A pause's polls: both counts unchanged over this long means the stroke has landed.
SETTLE_S = 0.1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _http_rate(url: str, seconds: float) -> dict[str, Any]:
    import aiohttp

    times: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(http: aiohttp.ClientSession) -> None:
        while (t0 := time.perf_counter()) < deadline:
            async with http.get(url) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"bench: GET {url} answered {r.status}")
            times.append(time.perf_counter() - t0)

    connector = aiohttp.TCPConnector(limit=HTTP_CLIENTS)
    async with aiohttp.ClientSession(connector=connector) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(HTTP_CLIENTS)))
        elapsed = time.perf_counter() - start
    ms = np.asarray(times) * 1000.0
    return {"requests": len(times), "rate": round(len(times) / elapsed, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def _touch(base: str, host: str, port: int, seconds: float) -> dict[str, Any] | None:
    """Drag on the page for ``seconds``; None when chromium or Playwright is missing."""
    chromium = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if chromium is None:
        return None
    with sync_playwright() as p, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(20.0)
        browser = p.chromium.launch(executable_path=chromium)
        try:
            context = browser.new_context(viewport={"width": 900, "height": 600}, has_touch=True)
            page = context.new_page()
            page.goto(base + "/play")
            page.wait_for_selector("body[data-link=open]", timeout=20000)
            cdp = context.new_cdp_session(page)
            box = page.locator("#pad").bounding_box()
            assert box is not None
            before = status(host, port)

            def at(t: float) -> list[dict[str, float]]:
                # A circle over the middle of the pad: every move a new point.
                x = box["x"] + box["width"] * (0.5 + 0.3 * np.cos(t))
                y = box["y"] + box["height"] * (0.5 + 0.3 * np.sin(t))
                return [{"x": float(x), "y": float(y), "id": 0}]

            def settled() -> tuple[int, list[Any]]:
                """The page's sends and ``/status/latency``'s reply (count first) once neither the sends
                nor the count move any more."""
                last = (-1, -1)
                while True:
                    time.sleep(SETTLE_S)
                    sends = int(page.evaluate("() => play.pad.moves"))
                    reply = request(host, port, "/status/latency", sock)
                    if (sends, reply[0]) == last:
                        return sends, reply
                    last = (sends, reply[0])

            # The finger comes down (a note and a point: two latencies for one send), then moves only.
            cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": at(0.0)})
            period = 1.0 / TOUCH_RATE
            n = int(seconds * TOUCH_RATE)
            sent, reply = settled()
            joined: list[float] = []
            server: list[float] = []
            skipped = 0
            i = 0
            length = STROKE
            while i < n:
                t0 = time.perf_counter()
                stroke = min(length, n - i)
                for k in range(1, stroke + 1):
                    cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": at((i + k) * 0.05)})
                    time.sleep(max(0.0, t0 + k * period - time.perf_counter()))
                i += stroke
                counted = reply[0]
                now_sent, reply = settled()
                sends, applied = now_sent - sent, reply[0] - counted
                if sends and sends == applied and applied <= LATENCY_REPLY:
                    # One latency per move, in the order sent: each move's touch-to-block is its own
                    # touch-to-send plus its own arrival-to-block.
                    page_ms = page.evaluate(f"() => play.pad.sendDelays.slice(-{sends})")
                    audio_ms = reply[1:][-applied:]
                    joined += [a + b for a, b in zip(page_ms, audio_ms, strict=True)]
                    server += audio_ms
                else:  # two moves in one block's mailbox (or none applied): no one-to-one join
                    skipped += sends
                    length = max(2, length // 2)
                sent = now_sent
            cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
            time.sleep(0.2)  # the finger's lift reaches its block
            delays = np.asarray(page.evaluate("() => play.pad.sendDelays"), np.float64)
            moves = int(page.evaluate("() => play.pad.moves"))
            after = status(host, port)
        finally:
            browser.close()
    if not joined:
        raise RuntimeError(f"bench: no stroke of /play moves could be joined with its latencies ({skipped} moves)")
    e2e, audio = np.asarray(joined), np.asarray(server)
    return {
        "touches": n, "sent": moves, "joined": len(joined), "skipped": skipped,
        "touch_to_send_p50_ms": round(float(np.percentile(delays, 50)), 3),
        "touch_to_send_p99_ms": round(float(np.percentile(delays, 99)), 3),
        "arrival_to_block_p50_ms": round(float(np.percentile(audio, 50)), 3),
        "arrival_to_block_p99_ms": round(float(np.percentile(audio, 99)), 3),
        "touch_to_block_p50_ms": round(float(np.percentile(e2e, 50)), 3),
        "touch_to_block_p99_ms": round(float(np.percentile(e2e, 99)), 3),
        "touch_to_block_max_ms": round(float(e2e.max()), 3),
        "late_blocks": after["late_blocks"] - before["late_blocks"],
    }


def bench_web(cfg: Config, quick: bool) -> dict[str, Any]:
    """HTTP request rates and, with chromium, the page's touch-to-block figures (see the module doc)."""
    seconds = 2.0 if quick else 5.0
    http_port = _free_port()
    network = {"host": "127.0.0.1", "port": 0, "zeroconf": False, "udp_rate_limit": 0, "http_port": http_port}
    out: dict[str, Any] = {}
    with live_server(cfg, {"network": network}) as (host, port, _):
        base = f"http://127.0.0.1:{http_port}"
        out["http_namespace"] = asyncio.run(_http_rate(base + "/", seconds))
        out["http_value"] = asyncio.run(_http_rate(base + "/latent?VALUE", seconds))
    # A fresh server: the audio's arrival-to-block figures are then the page's moves alone.
    http_port = _free_port()
    with live_server(cfg, {"network": {**network, "http_port": http_port}}) as (host, port, _):
        out["touch"] = _touch(f"http://127.0.0.1:{http_port}", host, port, 2 * seconds)
    return out


def markdown_rows(w: dict[str, Any], block_ms: float) -> list[tuple[str, str, str]]:
    """The web figures as rows of the bench's table."""
    rows = []
    for key, what in (("http_namespace", "`GET /` (the whole namespace, live values)"),
                      ("http_value", "`GET /latent?VALUE`")):
        h = w[key]
        rows.append((f"OSCQuery HTTP, {what}", f"{h['rate']:,.0f}/s (p50 {h['p50_ms']:.2f} ms)",
                     f"{HTTP_CLIENTS} keep-alive connections asking back to back"))
    t = w.get("touch")
    if t:
        rows.append(("/play page: touch → audio block, per move (p50 / p99)",
                     f"{t['touch_to_block_p50_ms']:.2f} / {t['touch_to_block_p99_ms']:.2f} ms",
                     f"headless chromium, real touch events at {TOUCH_RATE:.0f}/s: each move's touch-to-send "
                     f"joined with its own arrival-to-block; {t['joined']:,} moves joined, {t['skipped']} skipped "
                     f"(two in one block), max {t['touch_to_block_max_ms']:.1f} ms"))
        rows.append(("… of which touch → WebSocket send (p50 / p99)",
                     f"{t['touch_to_send_p50_ms']:.2f} / {t['touch_to_send_p99_ms']:.2f} ms",
                     "from the event's time stamp to the page's send: the browser's input pipeline, mostly"))
        rows.append(("… and WebSocket arrival → block (p50 / p99)",
                     f"{t['arrival_to_block_p50_ms']:.2f} / {t['arrival_to_block_p99_ms']:.2f} ms",
                     f"p99 = {t['arrival_to_block_p99_ms'] / block_ms:.2f} blocks; late blocks {t['late_blocks']}"))
    else:
        rows.append(("/play page: touch → block", "not measured", "chromium or playwright not installed"))
    return rows
