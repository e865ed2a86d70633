"""The web side's figures for ``timbrespace bench``: the OSCQuery HTTP server's request rate, and a
touch on the ``/play`` page to the audio block, through the WebSocket.

- HTTP: clients on keep-alive connections ask ``GET /`` (the whole namespace, every layer's live
  values) and ``GET /latent?VALUE`` back to back for a few seconds; requests answered per second.
- Touch: the page in headless chromium (Debian's ``chromium``, driven by Playwright, when both are
  installed) against a fresh server, a finger dragged on the pad by real touch events at 60 a
  second. Two parts, each measured where it happens: touch event (its time stamp) to WebSocket
  send inside the page (the page sends each move as it is delivered, so this is the browser's
  input pipeline), and WebSocket arrival to the audio block that applied the move (a ``/touch``,
  which on the fresh server's patch engine moves the layer's point as ``/latent`` does; the audio
  process's own arrival-to-block figures, which only those moves fill on a fresh server). What
  lies between, one loopback write, is not measured.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import time
from typing import Any

import numpy as np

from timbrespace.config import Config

__all__ = ["bench_web", "markdown_rows"]

#: Keep-alive HTTP connections asking at once (under the server's 16 per host).
HTTP_CLIENTS = 8
#: Touch events a second: a finger as a phone's screen reports it.
TOUCH_RATE = 60.0


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
    from timbrespace.bench import _status

    chromium = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if chromium is None:
        return None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        try:
            context = browser.new_context(viewport={"width": 900, "height": 600}, has_touch=True)
            page = context.new_page()
            page.goto(base + "/play")
            page.wait_for_selector("body[data-link=open]", timeout=20000)
            cdp = context.new_cdp_session(page)
            box = page.locator("#pad").bounding_box()
            assert box is not None
            before = _status(host, port)

            def at(t: float) -> list[dict[str, float]]:
                # A circle over the middle of the pad: every move a new point.
                x = box["x"] + box["width"] * (0.5 + 0.3 * np.cos(t))
                y = box["y"] + box["height"] * (0.5 + 0.3 * np.sin(t))
                return [{"x": float(x), "y": float(y), "id": 0}]

            cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": at(0.0)})
            period = 1.0 / TOUCH_RATE
            n = int(seconds * TOUCH_RATE)
            t0 = time.perf_counter()
            for i in range(1, n + 1):
                cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": at(i * 0.05)})
                time.sleep(max(0.0, t0 + i * period - time.perf_counter()))
            cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
            time.sleep(0.2)  # the last moves reach their blocks
            delays = np.asarray(page.evaluate("() => play.pad.sendDelays"), np.float64)
            moves = int(page.evaluate("() => play.pad.moves"))
            after = _status(host, port)
        finally:
            browser.close()
    return {
        "touches": n, "sent": moves,
        "touch_to_send_p50_ms": round(float(np.percentile(delays, 50)), 3),
        "touch_to_send_p99_ms": round(float(np.percentile(delays, 99)), 3),
        "arrival_to_block_p50_ms": after["latency_p50_ms"], "arrival_to_block_p99_ms": after["latency_p99_ms"],
        "late_blocks": after["late_blocks"] - before["late_blocks"],
    }


def bench_web(cfg: Config, quick: bool) -> dict[str, Any]:
    """HTTP request rates and, with chromium, the page's touch-to-block figures (see the module doc)."""
    from timbrespace.bench import _server

    seconds = 2.0 if quick else 5.0
    http_port = _free_port()
    network = {"host": "127.0.0.1", "port": 0, "zeroconf": False, "udp_rate_limit": 0, "http_port": http_port}
    out: dict[str, Any] = {}
    with _server(cfg, {"network": network}) as (host, port, _):
        base = f"http://127.0.0.1:{http_port}"
        out["http_namespace"] = asyncio.run(_http_rate(base + "/", seconds))
        out["http_value"] = asyncio.run(_http_rate(base + "/latent?VALUE", seconds))
    # A fresh server: the audio's arrival-to-block figures are then the page's moves alone.
    http_port = _free_port()
    with _server(cfg, {"network": {**network, "http_port": http_port}}) as (host, port, _):
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
        rows.append(("/play page: touch → WebSocket send (p50 / p99)",
                     f"{t['touch_to_send_p50_ms']:.2f} / {t['touch_to_send_p99_ms']:.2f} ms",
                     f"headless chromium, real touch events at {TOUCH_RATE:.0f}/s: from the event's time stamp "
                     "to the page's WebSocket send (the browser's input pipeline, mostly)"))
        rows.append(("/play page: WebSocket arrival → block, `/touch` moves (p50 / p99)",
                     f"{t['arrival_to_block_p50_ms']:.2f} / {t['arrival_to_block_p99_ms']:.2f} ms",
                     f"p99 = {t['arrival_to_block_p99_ms'] / block_ms:.2f} blocks; {t['sent']:,} moves, "
                     f"late blocks {t['late_blocks']}"))
    else:
        rows.append(("/play page: touch → block", "not measured", "chromium or playwright not installed"))
    return rows
