"""Fingers on the map (/touch, /touch/off) from outside: real UDP and TCP sockets, a real server.

Each finger is a voice of its own (voices in /status), shown to the layer's subscribers as
/cursor/touch at its own point; a client's fingers are released when it leaves; bad ids, points out
of range and a hand with too many fingers are answered with a /fail that says why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from timbrespace.session.clients import MAX_TOUCH_ID, MAX_TOUCHES

from conftest import OscClient, ServerProc, TcpOscClient, start_server

WAIT_S = 5.0


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    # Room for a whole hand of fingers on the patch engine too (its default polyphony is 8).
    s = start_server(tmp_path_factory.mktemp("touch"), sessions={"feedback_rate": 100.0}, audio={"polyphony": 16})
    yield s
    s.stop()


def voices(s: ServerProc, want: int) -> int:
    with s.client() as c:
        return int(c.status_until(lambda st: st["voices"] == want, WAIT_S)["voices"])


def joined(c: OscClient, name: str, layer: int, *, notify: bool = False) -> int:
    """``c`` says hello as ``name`` and plays ``layer`` (subscribed to it when ``notify``); its id."""
    ident = int(c.request("/hello", name).params[0])
    assert c.request("/layer", layer).params == [layer]
    if notify:
        c.send("/notify", 1)
        c.expect("/done")
    return ident


def heard(c: OscClient, address: str, cond: Callable[[list[Any]], bool]) -> list[Any]:
    """Feedback read until a message to ``address`` meets ``cond``."""
    seen: list[list[Any]] = []
    while True:
        try:
            m = c.recv(WAIT_S)
        except TimeoutError:
            raise AssertionError(f"no {address} as wanted; saw {seen[-5:]}") from None
        if m.address == address:
            seen.append(m.params)
            if cond(m.params):
                return m.params


def finger(ident: int, tid: int, x: float, y: float, down: int) -> Callable[[list[Any]], bool]:
    return lambda p: (p[0], p[2], p[5]) == (ident, tid, down) and p[3:5] == pytest.approx([x, y], abs=1e-6)


def test_timbre_fingers_are_voices_each_at_its_own_point_until_lifted_or_gone(srv: ServerProc) -> None:
    base = voices(srv, 0)
    watcher, player = TcpOscClient(srv.host, srv.port), TcpOscClient(srv.host, srv.port)
    try:
        joined(watcher, "watcher", 1, notify=True)
        point = heard(watcher, "/latent", lambda p: True)  # the layer's point, in its snapshot
        pid = joined(player, "hands", 1)
        player.send("/engine", "timbre")
        player.send("/touch", 0, 0.2, 0.3, 60, 100)
        player.send("/touch", 1, 0.8, 0.7)  # pitch and velocity left to their defaults
        player.sync()
        assert voices(srv, base + 2) == base + 2
        heard(watcher, "/cursor/touch", finger(pid, 0, 0.2, 0.3, 1))
        heard(watcher, "/cursor/touch", finger(pid, 1, 0.8, 0.7, 1))
        # A subscriber that comes later is shown the fingers down in its first messages.
        with TcpOscClient(srv.host, srv.port) as late:
            joined(late, "late", 1, notify=True)
            # Under the timbre engine a finger has its own point: the layer's stays where it was.
            assert heard(late, "/latent", lambda p: True) == point
            heard(late, "/cursor/touch", finger(pid, 0, 0.2, 0.3, 1))
        player.send("/touch", 1, 0.5, 0.4)  # a finger moves: still its one voice
        heard(watcher, "/cursor/touch", finger(pid, 1, 0.5, 0.4, 1))
        player.send("/touch/off", 0)
        player.sync()
        heard(watcher, "/cursor/touch", finger(pid, 0, 0.2, 0.3, 0))
        assert voices(srv, base + 1) == base + 1
        player.send("/touch", 2, 0.9, 0.1)
        player.sync()
        assert voices(srv, base + 2) == base + 2
        player.close()  # the player vanishes with two fingers down: both are released
        assert voices(srv, base) == base
        heard(watcher, "/clients", lambda p: p[:2] == ["left", pid])
    finally:
        watcher.close()
        player.close()


def sustaining_points(n: int) -> list[tuple[float, float]]:
    """``n`` points of the unit square where the shipped map decodes a polyphonic patch (a mono or
    legato one plays one key at a time) that holds a note (sustain at least 0.3, attack under 0.2 s)
    and lets it go within a second: a voice count there tests the fingers, not the sound the map
    happens to give a point."""
    import numpy as np

    from timbrespace.models.patch_space import PatchSpace, default_checkpoint
    from timbrespace.patch import params

    grid = np.array([(x, y) for y in np.linspace(0.1, 0.9, 9) for x in np.linspace(0.1, 0.9, 9)])
    v = PatchSpace.load(default_checkpoint(), device="cpu", num_threads=1).decode_unit(grid)
    def seconds(name: str) -> np.ndarray:  # bank units to what the synth plays (the power law of times)
        spec = params.PARAMS[params.INDEX[name]]
        return np.array([spec.control_value(x) for x in v[:, params.INDEX[name]]])

    ok = (v[:, params.INDEX["amp_sustain"]] >= 0.3) & (seconds("amp_attack") < 0.2) & (seconds("amp_release") < 1.0)
    ok &= v[:, params.INDEX["keyboard_mode"]] == 0  # poly
    found = [(float(x), float(y)) for x, y in grid[ok]]
    assert len(found) >= n, f"the shipped map holds a note at only {len(found)} of 81 points"
    return found[:: max(1, len(found) // n)][:n]


def test_patch_fingers_play_their_keys_and_move_the_layers_point(srv: ServerProc) -> None:
    base = voices(srv, 0)
    (x0, y0), (x1, y1) = sustaining_points(2)
    watcher, player = srv.client(), srv.client()
    try:
        joined(watcher, "patch watcher", 2, notify=True)
        pid = joined(player, "patch hands", 2)
        player.send("/touch", 0, x0, y0, 64, 100)
        player.sync()
        heard(watcher, "/latent", lambda p: p == pytest.approx([x0, y0], abs=1e-6))
        player.send("/touch", 1, x1, y1, 67, 100)
        player.sync()
        heard(watcher, "/latent", lambda p: p == pytest.approx([x1, y1], abs=1e-6))
        heard(watcher, "/cursor/touch", finger(pid, 1, x1, y1, 1))
        assert voices(srv, base + 2) == base + 2
        player.send("/touch/off", 0)
        player.sync()
        assert voices(srv, base + 1) == base + 1
        player.send("/panic")  # its own notes: its fingers too
        player.sync()
        heard(watcher, "/cursor/touch", finger(pid, 1, x1, y1, 0))
        assert voices(srv, base) == base
        player.send("/touch/off", 1)
        assert "finger 1 is not down" in player.expect("/fail").params[1]
    finally:
        watcher.close()
        player.close()


def test_bad_fingers_fail_and_a_hand_is_bounded(srv: ServerProc) -> None:
    base = voices(srv, 0)
    with srv.client() as c:
        joined(c, "ten", 3)
        # The timbre engine: each finger holds its own note at its own point. On the patch engine the
        # fingers share the layer's one patch, the last finger's, whose envelope may let the others fade
        # (where the map decodes a patch without sustain), so the count would test the map, not the hand.
        c.send("/engine", "timbre")
        for message, reason in (
            (("/touch/off", 3), "/touch/off: finger 3 is not down (this client's fingers down: none)"),
            (("/touch", MAX_TOUCH_ID + 1, 0.5, 0.5), f"/touch argument 'id': {MAX_TOUCH_ID + 1} is out of range "
                                                     f"[0, {MAX_TOUCH_ID}]"),
            (("/touch", -1, 0.5, 0.5), "/touch argument 'id': -1 is out of range"),
            (("/touch", 0, 1.5, 0.5), "/touch argument 'x': 1.5 is out of range [0, 1]"),
            (("/touch", 0, 0.5, 0.5, 60, 0), "/touch argument 'velocity': 0 is out of range [1, 127]"),
            (("/touch", 0, 0.5), "/touch: expected 3 to 5 argument(s)"),
        ):
            c.send(*message)
            fail = c.expect("/fail").params
            assert fail[0] == message[0] and fail[1].startswith(reason), fail
        for tid in range(MAX_TOUCHES):
            c.send("/touch", tid, tid / MAX_TOUCHES, 0.5, 48 + tid, 100)
        c.sync()  # no /fail before it: every finger down
        assert voices(srv, base + MAX_TOUCHES) == base + MAX_TOUCHES
        c.send("/touch", MAX_TOUCHES, 0.5, 0.5)
        assert f"{MAX_TOUCHES} fingers are down already" in c.expect("/fail").params[1]
        c.send("/layer/0/touch", 0, 0.5, 0.5)  # finger 0 is down on layer 3
        assert "finger 0 is down on layer 3" in c.expect("/fail").params[1]
        c.send("/bye")  # leaving lifts them all
        c.expect("/done")
        assert voices(srv, base) == base
