"""Issue 14: no note stays stuck (floods, glides, a stalled audio process), and a stall is visible."""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import ServerProc, osc, read_wav, start_server

# A voice's release, once its note-off arrived, ends well within this (the default patch's release is
# short; the timbre engine's is 0.3 s); the control side also reconciles voices every second.
SETTLE_S = 10.0


def _audio_pid(server_pid: int) -> int:
    """The audio process: the server's multiprocessing child (not its resource tracker)."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        with contextlib.suppress(OSError):
            ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = Path(f"/proc/{d}/cmdline").read_bytes()
            if ppid == server_pid and b"spawn_main" in cmd and b"resource_tracker" not in cmd:
                return int(d)
    raise AssertionError("no audio process found")


def _settle_voices(s: ServerProc) -> int:
    """Poll /status until no voice sounds (or SETTLE_S passed); the last voice count."""
    c = s.client()
    deadline = time.monotonic() + SETTLE_S
    while True:
        voices = int(c.status()["voices"])
        if voices == 0 or time.monotonic() > deadline:
            c.close()
            return voices
        time.sleep(0.1)


def _flood(host: str, port: int, seed: int, pairs: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 12)  # the /fail replies are not read
    r = random.Random(seed)
    for _ in range(pairs):
        p = r.randrange(36, 96)
        sock.sendto(osc("/note", p, 100), (host, port))
        sock.sendto(osc("/note", p, 0), (host, port))
    sock.close()


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[ServerProc]:
    s = start_server(tmp_path)
    yield s
    s.stop()


def test_note_flood_from_four_processes_leaves_no_voice_sounding(fresh: ServerProc) -> None:
    # Before the fix a full command socket dropped note-offs like any message: 3 voices stayed on.
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_flood, args=(fresh.host, fresh.port, k, 3000)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert _settle_voices(fresh) == 0


@pytest.mark.parametrize("engine", ["patch", "timbre"])
def test_note_off_releases_a_glided_note(fresh: ServerProc, engine: str) -> None:
    # The timbre engine matched a note-off against the glided pitch: /pitch 72 left note 60 on for good.
    c = fresh.client()
    c.send("/engine", engine)
    c.sync(1)
    assert c.status()["engine"] == engine
    c.send("/note", 60, 100)
    c.send("/pitch", 72.0)
    c.sync(2)
    time.sleep(0.1)
    assert c.status()["voices"] == 1
    c.send("/note", 60, 0)
    c.sync(3)
    c.close()
    assert _settle_voices(fresh) == 0


def test_audio_stall_is_reported_and_its_notes_are_released(fresh: ServerProc) -> None:
    c = fresh.client()
    c.send("/note", 60, 100)
    c.sync(1)
    pid = _audio_pid(fresh.proc.pid)
    os.kill(pid, signal.SIGSTOP)
    try:
        # While audio is stopped the command socket fills: the note-offs sent now must still land.
        # Four keys only, so that the voice of 60 is never stolen (which would release it anyway).
        flood = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        flood.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 12)
        for i in range(1000):
            flood.sendto(osc("/note", 40 + i % 4, 100), (fresh.host, fresh.port))
            flood.sendto(osc("/note", 40 + i % 4, 0), (fresh.host, fresh.port))
            if i % 25 == 24:
                time.sleep(0.003)  # paced, so that the server's UDP buffer does not drop them first
        flood.sendto(osc("/note", 60, 0), (fresh.host, fresh.port))
        flood.close()
        time.sleep(0.5)
        st = c.status()
        assert st["audio_stall_s"] > 0.1, st  # visible while it lasts (late_blocks cannot move yet)
    finally:
        os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + 5.0
    while (st := c.status())["audio_stall_s"] > 0.0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert st["audio_stall_s"] == 0.0
    assert st["late_blocks"] > 0  # the blocks never rendered on time are counted once it is over
    c.close()
    assert _settle_voices(fresh) == 0
    fresh.stop()
    # Once when it starts, once when it ends (a busy machine may add a short stall of its own).
    events = [line for line in fresh.lines if "audio stalled" in line or "audio resumed after a stall" in line]
    assert events and all(("stalled" in e) == (i % 2 == 0) for i, e in enumerate(events)), events
    assert "audio resumed after a stall" in events[-1]


def test_nan_in_the_state_file_is_replaced_by_defaults_never_written_back(tmp_path: Path) -> None:
    # Before: NaN loaded silently and written back; /patch/save then failed, transfer notes were silent.
    state = tmp_path / "state.json"
    state.write_text(
        '{"version": 1, "active": "timbre", "engines": {'
        '"patch": {"engine": "patch", "xy": [0.5, 0.5], "alpha": NaN, "values": {"filter_cutoff": NaN}},'
        '"timbre": {"engine": "timbre", "mode": "transfer", "source": "flute", "target": "cello",'
        ' "alpha": NaN, "xy": [Infinity, 0.5]}}}\n'
    )
    out = tmp_path / "take.wav"
    s = start_server(tmp_path, "--record", str(out))
    try:
        c = s.client()
        assert c.status()["engine"] == "timbre"
        c.send("/note", 69, 100)
        c.sync(1)
        time.sleep(0.5)
        c.send("/note", 69, 0)
        c.send("/patch/save", "after nan")
        assert c.expect("/patch/save.reply").params[1].endswith("after nan")
        c.close()
    finally:
        assert s.stop() == 0
    log = "\n".join(s.lines)
    for key, rng in (("patch.values.filter_cutoff", "[-0.5, 1.5]"), ("patch.alpha", "[0, 1]"),
                     ("timbre.alpha", "[0, 1]"), ("timbre.xy[0]", "[0, 1]")):
        line = next(x for x in s.lines if f"state: {key} = " in x)
        assert rng in line and ("nan" in line or "inf" in line), line
        assert log.count(f"state: {key} = ") == 1
    saved = json.loads(state.read_text(), parse_constant=lambda c: pytest.fail(f"{c} written back"))
    assert saved["layers"][0]["engines"]["timbre"]["alpha"] == 0.0
    audio = read_wav(out)
    assert np.isfinite(audio).all() and np.sqrt(np.mean(audio**2)) > 1e-3  # the transfer note sounded


@pytest.mark.parametrize("char", ["\u202e", "\u2066", "\u200b", "\ufeff", "\u2028", "\u2029", "\u00ad", "\x85"])
def test_patch_save_refuses_invisible_characters_naming_them(server: ServerProc, char: str) -> None:
    c = server.client()
    c.send("/patch/save", f"pad{char}one")
    fail = c.expect("/fail")
    assert fail.params[0] == "/patch/save" and f"U+{ord(char):04X}" in fail.params[1], fail.params
    c.close()


def test_patch_save_refuses_a_factory_presets_name(server: ServerProc) -> None:
    # A user preset named like a factory one made plain-name loads ambiguous.
    c = server.client()
    factory = c.request("/patch/load", 0).params[1]  # bank/name
    name = factory.split("/", 1)[1]
    c.send("/patch/save", name)
    fail = c.expect("/fail")
    assert "a factory preset is named" in fail.params[1] and factory in fail.params[1], fail.params
    c.close()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (needs root and mount; skipped with the reason where refused)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tiny tmpfs here: {r.stderr.strip() or r.returncode}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(folder: Path) -> None:
    with contextlib.suppress(OSError), open(folder / "filler", "wb", buffering=0) as f:
        while True:
            f.write(b"\0" * 4096)


def test_full_disk_keeps_the_previous_bank_and_state_and_says_so(tmp_path: Path, tiny_disk: Path) -> None:
    bank, state = tiny_disk / "user.amSynth.bank", tiny_disk / "state.json"
    s = start_server(tmp_path, patch={"user_bank": str(bank)}, state={"path": str(state)})
    try:
        c = s.client()
        assert c.request("/patch/save", "first").params[1].endswith("/first")
        before = bank.read_bytes()
        _fill(tiny_disk)
        c.send("/patch/save", "second")
        fail = c.expect("/fail").params[1]
        assert "No space left on device" in fail and "the previous file is unchanged" in fail, fail
        assert str(tiny_disk) not in fail  # the reply names the file, not where it lives
        c.close()
    finally:
        s.stop()
    assert bank.read_bytes() == before
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler", "user.amSynth.bank"]  # no temp file left
    assert any("could not save state" in line and "No space left" in line for line in s.lines)


def test_relative_paths_in_a_config_resolve_beside_it(tmp_path: Path) -> None:
    # Before: `user_bank: mybank.amSynth.bank` in a config kept elsewhere landed in the repository root.
    from timbrespace import config

    s = start_server(tmp_path, patch={"user_bank": "mybank.amSynth.bank"}, state={"path": "st/state.json"})
    try:
        c = s.client()
        c.request("/patch/save", "beside the config")
        c.close()
    finally:
        assert s.stop() == 0
    assert (tmp_path / "mybank.amSynth.bank").is_file() and (tmp_path / "st" / "state.json").is_file()
    assert not (config.REPO_ROOT / "mybank.amSynth.bank").exists()
    default = config.load(None)  # the default config's own paths stay in the repository
    assert default.patch.user_bank == config.REPO_ROOT / "var" / "user.amSynth.bank"
    assert config.load(s.config).patch.model == default.patch.model  # keys a config leaves out too
