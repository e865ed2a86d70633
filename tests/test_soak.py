"""Flood and soak from separate processes (issue 14): fairness between clients, flat resources.

Figures from these runs are in docs/reliability.md, "Faults, floods and soak". Pass/fail rests on
what is claimed structurally (no TCP answer lost, resources flat, no note left sounding); round
trips are reported, and bounded only generously (tests/README.md: no wall-clock speed criteria).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from timbrespace.protocol.mixload import percentiles

from conftest import ServerProc, start_server

#: Seconds of the CI soak; TIMBRESPACE_SOAK_S overrides it (600 for the documented 10-minute run).
SOAK_S = float(os.environ.get("TIMBRESPACE_SOAK_S", "60"))
#: A well-behaved client's /status round trip, p99, must stay under this even under a flood: two
#: orders of magnitude over the claim (one block, 5.33 ms), so a busy CI machine cannot fail it,
#: while a starved client (seconds) does.
GENEROUS_P99_MS = 500.0
#: RSS growth allowed between the first and the last third of the soak (after warm-up).
RSS_GROWTH_KIB = 20 * 1024


def spawn(s: ServerProc, mode: str, duration: float, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "timbrespace.protocol.mixload", mode, s.host, str(s.port),
                             "--duration", str(duration), *extra], stdout=subprocess.PIPE, text=True)


def result(p: subprocess.Popen[str], timeout: float = 120.0, s: ServerProc | None = None) -> dict[str, Any]:
    out, _ = p.communicate(timeout=timeout)
    # On failure the server's own account (its closes, refusals, warnings) goes with the client's.
    assert p.returncode == 0, (out, [] if s is None else s.lines[-40:])
    d: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return d


def proc_sample(pid: int) -> dict[str, int]:
    """VmRSS (KiB), open file descriptors and threads of one process, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {"rss_kib": int(fields["VmRSS"].split()[0]), "threads": int(fields["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d))
    return out


def audio_child(s: ServerProc) -> int:
    for c in children(s.proc.pid):
        if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text():
            return c
    raise AssertionError("no audio process")


def test_a_flood_does_not_starve_a_well_behaved_client(tmp_path: Path) -> None:
    """One process floods (UDP: valid and invalid datagrams; then TCP: thousands of frames per
    write) while others poll /status at 20 Hz over TCP and over UDP: every TCP poll is answered,
    p99 within a generous bound; the figures are printed. Before the TCP batch limit a TCP flood
    held the loop for seconds per read (the TCP poll was lost)."""
    s = start_server(tmp_path, network={"udp_rate_limit": 2000.0})
    try:
        figures = {}
        for phase in ("quiet", "flood", "tcpflood"):
            polls = [spawn(s, "poll", 3.0, "--tcp"), spawn(s, "poll", 3.0, "--timeout", "0.5")]
            f = spawn(s, phase, 4.0) if phase != "quiet" else None
            tcp, udp = (result(p, s=s) for p in polls)
            if f is not None:
                figures[f"{phase} flooder"] = result(f, s=s)
            for o in (tcp, udp):
                figures[f"{phase} {o['protocol']}"] = {**percentiles([ms for _, ms in o["rtts"]]), "lost": o["lost"]}
            assert tcp["lost"] == 0, figures
            assert figures[f"{phase} tcp"]["p99"] < GENEROUS_P99_MS, figures
            # UDP polls may be lost (here 0 to a third of them): the kernel drops what arrives while
            # the socket's queue is full of the flood, before the server can tell one source from
            # another. The server still serves UDP; a client that must get every answer uses TCP.
            assert udp["rtts"], figures
        print("\n/status round trips (ms):", json.dumps(figures))
        c = s.client()
        st = c.status()
        c.close()
        assert st["audio_stall_s"] == 0.0
    finally:
        assert s.stop() == 0


def soak(tmp_path: Path, seconds: float) -> None:
    s = start_server(tmp_path)
    try:
        pids = {"server": s.proc.pid, "audio": audio_child(s)}
        loads = [spawn(s, "mixed", seconds, "--seed", str(i + 1)) for i in range(3)]
        poller = spawn(s, "poll", seconds, "--tcp")
        samples: list[tuple[float, dict[str, dict[str, int]]]] = []
        start = time.monotonic()
        every = max(1.0, seconds / 30.0)
        while time.monotonic() - start < seconds:
            samples.append((time.monotonic() - start, {k: proc_sample(p) for k, p in pids.items()}))
            time.sleep(every)
        runs = [result(p, seconds + 120.0, s) for p in loads]
        polled = result(poller, 60.0, s)
        c = s.client()
        st = c.status_until(lambda st: st["voices"] == 0, timeout=10.0)  # no /panic: every note released
        c.close()
        warm = [x for t, x in samples if t >= seconds / 6.0]  # the first sixth is warm-up
        third = max(1, len(warm) // 3)
        first, last = warm[:third], warm[-third:]
        rtts = polled["rtts"]
        windows = [percentiles([ms for t, ms in rtts if lo <= t < hi])
                   for lo, hi in ((0.0, seconds / 3), (seconds / 3, 2 * seconds / 3), (2 * seconds / 3, 1e9))]
        report = {"seconds": seconds, "sent": runs, "status": st, "poll_windows_ms": windows,
                  "series": [{"t": round(t, 1), **{f"{k}_{f}": v for k, d in x.items() for f, v in d.items()}}
                             for t, x in samples]}
        print("\nsoak:", json.dumps(report))
        assert polled["lost"] == 0, report
        for who in pids:
            grew = max(x[who]["rss_kib"] for x in last) - max(x[who]["rss_kib"] for x in first)
            assert grew < RSS_GROWTH_KIB, (who, grew, report)
            for f in ("fds", "threads"):
                assert max(x[who][f] for x in last) <= max(x[who][f] for x in first) + 2, (who, f, report)
        assert max(w["p99"] for w in windows) < GENEROUS_P99_MS, report
    finally:
        assert s.stop() == 0


@pytest.mark.timeout(SOAK_S + 240)
def test_soak_mixed_load_keeps_memory_fds_and_threads_flat(tmp_path: Path) -> None:
    """Three processes of mixed load (every address, UDP and TCP, bundles, bad packets) for
    TIMBRESPACE_SOAK_S seconds (default 60; 600 is the documented run)."""
    soak(tmp_path, SOAK_S)


@pytest.mark.slow
@pytest.mark.timeout(600 + 240)
def test_soak_ten_minutes(tmp_path: Path) -> None:
    """The 10-minute form: ``make test ARGS="-m slow -k soak"``."""
    soak(tmp_path, 600.0)


def test_udp_rate_limit_drops_a_flooders_packets_unread(tmp_path: Path) -> None:
    """Over ``network.udp_rate_limit`` a source's datagrams are dropped before decoding: few replies
    (one /fail a second saying why, not one per packet), while another source is served."""
    s = start_server(tmp_path, network={"udp_rate_limit": 200.0, "udp_burst": 50})
    try:
        flooder = s.client(timeout=0.5)
        start = time.monotonic()
        for _ in range(5000):
            flooder.send("/status")
        replies = fails = 0
        try:
            while True:
                msg = flooder.recv(0.5)
                replies += 1
                if msg.address == "/fail":
                    fails += 1
                    assert "rate limit" in msg.params[1]
        except TimeoutError:
            pass
        elapsed = time.monotonic() - start
        # The burst, the refill over the run, and at most one /fail per second.
        assert replies <= 50 + 200 * elapsed + elapsed + 2, (replies, elapsed)
        assert 1 <= fails <= elapsed + 2
        other = s.client()
        assert other.status()["audio_stall_s"] == 0.0
        other.close()
        flooder.close()
    finally:
        assert s.stop() == 0
