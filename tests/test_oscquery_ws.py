"""OSCQuery's WebSocket on a real server: LISTEN/IGNORE streams values as binary OSC frames (coalesced
like the feedback, another layer's under its prefix), and OSC sent over it is played and answered."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from test_oscquery import _base, _value_until

from conftest import ServerProc, TcpOscClient, start_server


async def _frames_until(ws: Any, address: str, want: list[Any] | None = None,
                        timeout: float = 10.0) -> list[tuple[str, tuple[Any, ...]]]:
    """Binary frames decoded as OSC until one is ``address`` (with args ``want`` within 1e-6 when
    given), or AssertionError after ``timeout``; returns every message received."""
    from aiohttp import WSMsgType

    from timbrespace.protocol.codec import Message, decode_packet

    got: list[tuple[str, tuple[Any, ...]]] = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            frame = await ws.receive(timeout=left)
        except TimeoutError:
            break
        assert frame.type == WSMsgType.BINARY, frame
        msg = decode_packet(frame.data)
        assert isinstance(msg, Message)  # one message per frame
        got.append((msg.address, msg.args))
        if msg.address == address and (want is None or list(msg.args) == pytest.approx(want, abs=1e-6)):
            return got
    raise AssertionError(f"no {address} {want} within {timeout} s; received {got}")


def test_listen_streams_the_paths_listened_to_as_osc_frames(server: ServerProc) -> None:
    import aiohttp

    async def run() -> None:
        async with aiohttp.ClientSession() as http, http.ws_connect(_base(server) + "/") as ws:
            await ws.send_json({"COMMAND": "LISTEN", "DATA": "/latent"})
            first = await _frames_until(ws, "/latent")  # the value now
            assert all(a == "/latent" for a, _ in first)
            with server.client() as c:
                c.send("/source", 0)
                c.send("/target", 1)
                c.send("/alpha", 0.625)  # not listened to: never streamed
                c.send("/latent", 0.375, 0.125)
                c.sync()
            streamed = await _frames_until(ws, "/latent", [0.375, 0.125])
            assert {a for a, _ in streamed} == {"/latent"}
            # A second path gets its value at once; after IGNORE nothing more comes for it.
            await ws.send_json({"COMMAND": "LISTEN", "DATA": "/alpha"})
            assert (await _frames_until(ws, "/alpha", [0.625]))[-1] == ("/alpha", (0.625,))
            await ws.send_json({"COMMAND": "IGNORE", "DATA": "/latent"})
            await ws.send_json({"COMMAND": "IGNORE", "DATA": "/alpha"})
            with server.client() as c:
                c.send("/latent", 0.5, 0.5)
                c.sync()
                # The last IGNORE ended the WebSocket's subscription.
                subscribers = dict(zip(*[iter(c.request("/status/feedback").params)] * 2))["subscribers"]
                assert subscribers == 0
            with pytest.raises(AssertionError, match="no /latent"):
                await _frames_until(ws, "/latent", timeout=0.5)

    asyncio.run(run())


def test_listen_coalesces_a_burst_like_the_feedback(server: ServerProc) -> None:
    """A path listened to gets at most one frame a feedback flush, the newest value: a burst of moves
    comes as fewer frames than moves, as many at most as the flushes that sent anything, ending at
    the burst's last point (on layer 1: the other tests here play 0 and 2)."""
    import aiohttp

    def feedback(c: TcpOscClient) -> dict[str, Any]:
        return dict(zip(*[iter(c.request("/status/feedback").params)] * 2))

    moves = [(i / 100, 1 - i / 100) for i in range(1, 101)]

    async def run() -> None:
        async with aiohttp.ClientSession() as http, http.ws_connect(_base(server) + "/") as ws:
            await ws.send_json({"COMMAND": "LISTEN", "DATA": "/layer/1/latent"})
            await _frames_until(ws, "/layer/1/latent")  # the value now
            with TcpOscClient(server.host, server.port) as c:
                before = feedback(c)
                for x, y in moves:
                    c.send("/layer/1/latent", x, y)
                c.sync()
                got = await _frames_until(ws, "/layer/1/latent", list(moves[-1]))
                after = feedback(c)
            frames = [args for a, args in got if a == "/layer/1/latent"]
            assert len(frames) < len(moves)
            assert len(frames) <= after["ticks"] - before["ticks"]
            assert after["coalesced"] - before["coalesced"] >= len(moves) - len(frames)
            # Each frame a point of the burst, in the order sent.
            order = [moves.index(min(moves, key=lambda m: abs(m[0] - f[0]))) for f in frames]
            assert order == sorted(order)

    asyncio.run(run())


def test_listen_on_another_layers_path_follows_that_layer(server: ServerProc) -> None:
    """LISTEN /layer/2/latent watches layer 2 (/watch 2): its value at once, then its changes
    under that path, while the connection plays layer 0; the last IGNORE of layer 2's paths ends
    the watch. Before, a /layer/N/ path was ignored."""
    import aiohttp

    async def run() -> None:
        async with aiohttp.ClientSession() as http, http.ws_connect(_base(server) + "/") as ws:
            with server.client() as c:
                c.send("/layer/2/latent", 0.25, 0.75)
                c.sync()
            await ws.send_json({"COMMAND": "LISTEN", "DATA": "/layer/2/latent"})
            first = await _frames_until(ws, "/layer/2/latent", [0.25, 0.75])  # the value now
            assert {a for a, _ in first} <= {"/layer/2/latent"}
            with server.client() as c:
                c.send("/latent", 0.5, 0.5)  # layer 0: not listened to
                c.send("/layer/2/param", "filter_cutoff", 0.5)  # layer 2, another path: not listened to
                c.send("/layer/2/latent", 0.125, 0.375)
                c.sync()
            streamed = await _frames_until(ws, "/layer/2/latent", [0.125, 0.375])
            assert {a for a, _ in streamed} == {"/layer/2/latent"}
            await ws.send_json({"COMMAND": "IGNORE", "DATA": "/layer/2/latent"})
            with server.client() as c:
                c.send("/layer/2/latent", 0.625, 0.625)
                c.sync()
            with pytest.raises(AssertionError, match="no /layer/2/latent"):
                await _frames_until(ws, "/layer/2/latent", timeout=0.5)

    asyncio.run(run())


def test_watch_sends_another_layers_state_and_changes_under_its_prefix(server: ServerProc) -> None:
    with TcpOscClient(server.host, server.port) as w, server.client() as c:
        w.send("/watch", 1)
        assert "send /notify 1 first" in w.expect("/fail").params[1]
        w.send("/notify", 1, 0)
        w.expect("/done")
        w.send("/watch", 9)
        assert "layer 9 is out of range 0..3" in w.expect("/fail").params[1]
        c.send("/layer/1/latent", 0.25, 0.5)
        c.sync()
        w.send("/watch", 1)
        assert w.expect("/done").params == ["/watch", 1]
        assert w.expect("/layer/1/latent").params == pytest.approx([0.25, 0.5])  # its state at once
        c.send("/layer/1/latent", 0.75, 0.5)
        c.sync()
        assert w.expect("/layer/1/latent").params == pytest.approx([0.75, 0.5])  # then its changes
        w.send("/layer/1/latent", 0.5, 0.5)  # the watcher's own change comes back under the prefix
        assert w.expect("/layer/1/latent").params == pytest.approx([0.5, 0.5])
        w.send("/watch", 1, 0)
        assert w.expect("/done").params == ["/watch", 1]
        c.send("/layer/1/latent", 0.125, 0.5)
        c.sync()
        with pytest.raises(TimeoutError):
            w.expect("/layer/1/latent", timeout=0.5)


def test_osc_sent_over_the_websocket_is_played_and_answered(server: ServerProc) -> None:
    import aiohttp

    from timbrespace.protocol.encode import encode_message

    async def run() -> None:
        async with aiohttp.ClientSession() as http, http.ws_connect(_base(server) + "/") as ws:
            await ws.send_bytes(encode_message("/latent", (0.875, 0.25)))
            await ws.send_bytes(encode_message("/sync", (7,)))
            assert (await _frames_until(ws, "/synced"))[-1] == ("/synced", (7,))  # sent once the audio took it
            assert _value_until(_base(server) + "/latent?VALUE", [0.875, 0.25]) == pytest.approx([0.875, 0.25])
            await ws.send_bytes(encode_message("/latent", (5.0, 0.5)))
            (fail,) = await _frames_until(ws, "/fail")
            assert fail[1][0] == "/latent" and "out of range [0, 1]" in fail[1][1]
            await ws.send_bytes(encode_message("/status", ()))
            status = (await _frames_until(ws, "/status.reply"))[-1][1]
            assert "clients" in status
            await ws.send_bytes(b"not osc")
            (fail,) = await _frames_until(ws, "/fail")
            assert "malformed" in fail[1][1]
            # A WebSocket is a session client like a TCP connection: a member while it is open...
            await ws.send_bytes(encode_message("/hello", ("ws player",)))
            assert (await _frames_until(ws, "/hello.reply"))[-1][1][1] == "ws player"
            assert "ws player" in _members(server)
        # ... that leaves when it closes (its notes, had it any, released with it).
        deadline = time.monotonic() + 10
        while "ws player" in _members(server) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert "ws player" not in _members(server)

    asyncio.run(run())


def test_notify_sent_as_osc_over_the_websocket_streams_the_whole_feedback(server: ServerProc) -> None:
    """/notify 1 in a binary frame subscribes as over TCP: every feedback message comes, /cursor (no
    LISTEN path names it) included, until /notify 0."""
    import aiohttp

    from timbrespace.protocol.encode import encode_message

    async def run() -> None:
        async with aiohttp.ClientSession() as http, http.ws_connect(_base(server) + "/") as ws:
            await ws.send_bytes(encode_message("/notify", (1,)))
            assert (await _frames_until(ws, "/done"))[-1][1][0] == "/notify"
            with server.client() as c:
                c.request("/hello", "mover")
                c.send("/latent", 0.125, 0.25)
                c.send("/alpha", 0.5)
                c.sync()
                got = await _frames_until(ws, "/cursor", timeout=10)
                assert got[-1][1][1:] == ("mover", pytest.approx(0.125), pytest.approx(0.25))
                if ("/alpha", (0.5,)) not in got:  # the same flush may carry it before or after
                    await _frames_until(ws, "/alpha", [0.5])
                await ws.send_bytes(encode_message("/notify", (0,)))
                await _frames_until(ws, "/done")
                c.send("/latent", 0.75, 0.75)
                c.sync()
                with pytest.raises(AssertionError, match="no /latent"):
                    await _frames_until(ws, "/latent", timeout=0.5)

    asyncio.run(run())


def _members(server: ServerProc) -> list[str]:
    """The names /clients lists (the test server has few: one page)."""
    with server.client() as c:
        reply = c.request("/clients").params
    assert reply[0] == (len(reply) - 2) // 3
    return reply[3::3]


def test_server_stops_with_a_websocket_open(tmp_path: Path) -> None:
    import aiohttp

    s = start_server(tmp_path)

    async def run() -> None:
        async with aiohttp.ClientSession() as http, http.ws_connect(_base(s) + "/") as ws:
            await ws.send_json({"COMMAND": "LISTEN", "DATA": "/latent"})
            await _frames_until(ws, "/latent")
            # SIGTERM: the server closes the socket rather than wait for the client to.
            assert await asyncio.to_thread(s.stop) == 0
            frame = await ws.receive(timeout=10)
            assert frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), frame

    try:
        asyncio.run(run())
    finally:
        s.stop()
