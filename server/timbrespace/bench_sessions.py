"""``timbrespace bench``'s sessions section: N clients playing one server at once.

Each client does what a tablet in a gallery does: it says ``/hello``, subscribes to feedback
(``/notify 1``, renewed every 20 s), moves the shared point at 60 Hz and plays a note a second.
The clients run in child processes (:func:`players`, 32 clients each with their own UDP sockets),
so their Python competes with the server for cores, as a room of tablets would not, but never for
its GIL. For each N, on a fresh server (its counters, latency ring and clients its own): messages
lost (sent minus what the server counted), arrival-to-block latency, the feedback's fan-out time
per tick (``/status/feedback``), late blocks, and the CPU of the server's processes.
"""

from __future__ import annotations

import json
import math
import os
import random
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from timbrespace.bench_live import drained, live_server, request, status
from timbrespace.config import Config

MOVE_HZ = 60.0
#: A note starts every this many moves and stops half as many later: one a second, half a second long.
NOTE_EVERY = 60
#: Subscribers renew this often (docs/sessions.md: every 20-30 s; UDP subscriptions end after 60 s).
RENEW_S = 20.0
#: Clients per load-generator process.
PER_PROCESS = 32
#: Members the bench's server takes beyond the largest N: the bench's own polls are passers-by,
#: but a slack keeps a refused join from ever looking like a load figure.
HEADROOM = 32
#: The issue's targets: fan-out per tick under this, for this many subscribers...
FANOUT_TARGET_MS = 1.0
FANOUT_TARGET_N = 128
#: ... and no loss with p99 arrival-to-block latency under this many blocks, for this many clients.
LATENCY_TARGET_BLOCKS = 2.0
LATENCY_TARGET_N = 32


# -- the clients (run in child processes) --------------------------------------------------------
def _packets(sock: socket.socket) -> Iterator[bytes]:
    """What is waiting on a non-blocking socket."""
    while True:
        try:
            yield sock.recv(65536)
        except (BlockingIOError, ConnectionRefusedError):
            return


def _handshake(sel: selectors.BaseSelector, socks: list[socket.socket], messages: list[bytes], want: bytes,
               first: int) -> None:
    """Send each socket its message and wait until each got a reply starting with ``want``."""
    from timbrespace.protocol.codec import decode_packet

    waiting = set(range(len(socks)))
    for i in waiting:
        socks[i].send(messages[i])
    deadline = time.monotonic() + 30.0
    while waiting:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"bench: {len(waiting)} of {len(socks)} clients got no {want.decode()} within 30 s")
        for key, _ in sel.select(left):
            i = key.data
            for data in _packets(socks[i]):
                if data.startswith(want):
                    waiting.discard(i)
                elif data.startswith(b"/fail"):
                    raise RuntimeError(f"bench: client {first + i} was refused: {decode_packet(data)}")


def players(host: str, port: int, first: int, count: int, total: int, seconds: float) -> dict[str, Any]:
    """Play ``count`` clients (numbered from ``first`` of ``total``) from this process.

    Prints ``ready`` once every client joined and subscribed, waits for a line on stdin, plays for
    ``seconds``, says ``/bye`` and returns what it sent and received while playing.
    """
    from timbrespace.protocol.encode import MessageTemplate, encode_message

    socks = []
    sel = selectors.DefaultSelector()
    for i in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.connect((host, port))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
        socks.append(s)
    _handshake(sel, socks, [encode_message("/hello", (f"bench {first + i}",)) for i in range(count)],
               b"/hello.reply", first)
    _handshake(sel, socks, [encode_message("/notify", (1,))] * count, b"/done", first)
    print("ready", flush=True)
    sys.stdin.readline()
    for s in socks:  # what came before the start (snapshots, joins) is not counted
        for _ in _packets(s):
            pass

    latent = MessageTemplate("/latent", (float, float))
    pitches = [36 + (first + i) % 48 for i in range(count)]
    note_on = [encode_message("/note", (p, 100)) for p in pitches]
    note_off = [encode_message("/note", (p, 0)) for p in pitches]
    renew = encode_message("/notify", (1,))
    # Clients are spread over the 60 Hz period, as unsynchronised tablets would be.
    offsets = [(first + i) / total / MOVE_HZ for i in range(count)]
    rnd = random.Random(first)
    sent = moves = notes = failed = 0
    packets = [0] * count
    cursors = [0] * count
    behind = 0.0

    def send(s: socket.socket, data: bytes) -> None:
        nonlocal sent, failed
        try:
            s.send(data)
            sent += 1
        except (BlockingIOError, ConnectionRefusedError):
            failed += 1

    cpu0, t0 = time.process_time(), time.monotonic()
    end, renew_at = t0 + seconds, t0 + RENEW_S
    k = i = 0  # the next move: tick k, client i
    while True:
        due = t0 + k / MOVE_HZ + offsets[i]
        if due >= end:
            break
        now = time.monotonic()
        if now < due:
            for key, _ in sel.select(due - now):
                j = key.data
                for data in _packets(socks[j]):
                    packets[j] += 1
                    cursors[j] += data.count(b"/cursor\0")
            continue
        behind = max(behind, now - due)
        s = socks[i]
        send(s, latent.encode(rnd.random(), rnd.random()))
        moves += 1
        phase = (k + 7 * (first + i)) % NOTE_EVERY
        if phase in (0, NOTE_EVERY // 2):
            send(s, note_on[i] if phase == 0 else note_off[i])
            notes += 1
        i += 1
        if i == count:
            i, k = 0, k + 1
        if now >= renew_at:
            renew_at += RENEW_S
            for s in socks:
                send(s, renew)
    wall = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    for s in socks:
        send(s, encode_message("/bye", ()))
    time.sleep(0.2)
    for s in socks:
        s.close()
    return {"sent": sent, "moves": moves, "notes": notes, "send_failed": failed, "wall_s": wall, "cpu_s": cpu,
            "behind_max_ms": behind * 1000.0, "packets": packets, "cursors": cursors}


def _spawn(host: str, port: int, first: int, count: int, total: int, seconds: float) -> subprocess.Popen[str]:
    code = ("import json,sys\nfrom timbrespace.bench_sessions import players\n"
            "a=sys.argv[1:]\nr=players(a[0],int(a[1]),int(a[2]),int(a[3]),int(a[4]),float(a[5]))\n"
            "print(json.dumps(r),flush=True)\n")
    return subprocess.Popen([sys.executable, "-c", code, host, str(port), str(first), str(count), str(total),
                             str(seconds)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


# -- the server's side -----------------------------------------------------------------------------
def _feedback(host: str, port: int, address: str = "/status/feedback") -> dict[str, Any]:
    """``/status/feedback``'s counters (or another key-value status address's)."""
    args = request(host, port, address)
    return dict(zip(args[::2], args[1::2], strict=True))


def _stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()  # from the state on: the name may hold spaces


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process used so far."""
    f = _stat(pid)
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def _processes(server: int) -> dict[str, int]:
    """The server's processes by role: its control process and the audio process it spawned."""
    out = {"control": server}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int(_stat(int(entry.name))[1]) != server:
                continue
            cmd = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue  # gone meanwhile
        if b"spawn_main" in cmd:
            out["audio"] = int(entry.name)
    return out


def _run(cfg: Config, n: int, seconds: float, max_clients: int) -> dict[str, Any]:
    """One N on a fresh server."""
    with live_server(cfg, {"sessions": {"max_clients": max_clients}}) as (host, port, pid):
        procs = [_spawn(host, port, first, min(PER_PROCESS, n - first), n, seconds)
                 for first in range(0, n, PER_PROCESS)]
        try:
            for p in procs:
                assert p.stdout is not None and p.stdin is not None
                if p.stdout.readline().strip() != "ready":
                    raise RuntimeError(f"bench: a load generator did not start (exit {p.wait(10)})")
            time.sleep(0.5)  # the subscribers' snapshots go out before the counters are read
            fb0 = _feedback(host, port)
            gc0 = _feedback(host, port, "/status/runtime")
            st0 = status(host, port)
            roles = _processes(pid)
            cpu0 = {role: _cpu_s(p) for role, p in roles.items()}
            t0 = time.monotonic()
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.flush()
            played = []
            for p in procs:
                stdout, _ = p.communicate(timeout=seconds + 120)
                if p.returncode:
                    raise RuntimeError(f"bench: a load generator failed (exit {p.returncode})")
                played.append(json.loads(stdout))
            got, drain = drained(host, port, st0["received"])
            wall = time.monotonic() - t0
            cpu = {role: _cpu_s(p) - cpu0[role] for role, p in roles.items()}
            st1 = status(host, port)
            fb1 = _feedback(host, port)
            gc1 = _feedback(host, port, "/status/runtime")
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    sent = sum(r["sent"] for r in played)
    ticks = fb1["ticks"] - fb0["ticks"]
    play_s = max(r["wall_s"] for r in played)
    packets = [x for r in played for x in r["packets"]]
    cursors = [x for r in played for x in r["cursors"]]
    return {
        "clients": n,
        "subscribers": fb0["subscribers"],
        "seconds": round(play_s, 2),
        "sent": sent,
        "moves": sum(r["moves"] for r in played),
        "notes": sum(r["notes"] for r in played),
        "received": got,
        "lost": sent - got,
        "send_failed": sum(r["send_failed"] for r in played),
        "rejected": st1["rejected"] - st0["rejected"],
        "drain_ms": round(drain * 1000.0, 1),
        "latency_p50_ms": round(st1["latency_p50_ms"], 3),
        "latency_p99_ms": round(st1["latency_p99_ms"], 3),
        "block_ms": round(1000.0 * st1["block_size"] / st1["sample_rate"], 4),
        "late_blocks": st1["late_blocks"] - st0["late_blocks"],
        "fanout": {
            "ticks": ticks,
            "ticks_per_s": round(ticks / play_s, 1),
            "mean_ms": round((fb1["tick_ms"] - fb0["tick_ms"]) / ticks, 4) if ticks else 0.0,
            "slow_ticks": fb1["slow_ticks"] - fb0["slow_ticks"],
            "sent": fb1["sent"] - fb0["sent"],
        },
        # The control process's garbage collections while it played (what startup built is frozen).
        "collections": {"count": gc1["collections"] - gc0["collections"],
                        "full": gc1["full_collections"] - gc0["full_collections"],
                        "ms": round(gc1["gc_ms"] - gc0["gc_ms"], 2),
                        "over_1_ms": gc1["slow_collections"] - gc0["slow_collections"],
                        "longest_ms": round(gc1["gc_max_ms"], 3)},
        # Percent of one core over the run (playing and draining).
        "cpu_percent": {**{role: round(100.0 * s / wall, 1) for role, s in cpu.items()},
                        "clients": round(100.0 * sum(r["cpu_s"] for r in played) / play_s, 1)},
        "feedback_per_subscriber": {
            "packets_per_s": round(sum(packets) / len(packets) / play_s, 1),
            "packets_per_s_min": round(min(packets) / play_s, 1),
            "cursors_per_s": round(sum(cursors) / len(cursors) / play_s, 1),
        },
        "generator_behind_max_ms": round(max(r["behind_max_ms"] for r in played), 2),
    }


def bench_sessions(cfg: Config, quick: bool, host_timer: dict[str, Any] | None) -> dict[str, Any]:
    """N = 1, 8 (quick, 2 s each) or 1, 8, 32, 128 (20 s each) clients; see the module doc."""
    sizes = (1, 8) if quick else (1, 8, 32, 128)
    seconds = 2.0 if quick else 20.0
    out: dict[str, Any] = {"seconds": seconds, "move_hz": MOVE_HZ,
                           "load_average_before": [round(x, 2) for x in os.getloadavg()], "runs": []}
    for n in sizes:
        print(f"bench: sessions, {n} client{'s' if n > 1 else ''} ...", file=sys.stderr)
        out["runs"].append(_run(cfg, n, seconds, max(sizes) + HEADROOM))
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    out["targets"] = targets(out["runs"], host_timer)
    return out


def targets(runs: list[dict[str, Any]], host_timer: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The issue's targets, each met or not (None where this run did not measure it), and why."""
    by_n = {r["clients"]: r for r in runs}
    out: dict[str, dict[str, Any]] = {}
    r = by_n.get(LATENCY_TARGET_N)
    if r is None:
        out["latency"] = {"met": None, "why": "quick run"}
    else:
        blocks = r["latency_p99_ms"] / r["block_ms"]
        out["latency"] = {"met": r["lost"] == 0 and blocks < LATENCY_TARGET_BLOCKS,
                          "why": f"lost {r['lost']} of {r['sent']:,}, p99 {blocks:.2f} blocks"}
    if host_timer is None:
        out["late_blocks"] = {"met": None, "why": "no host-timer figure"}
    else:
        # The floor: the host's own late wake-ups at this rate, over each run's time (rounded up).
        rate = host_timer["over_one_block"] / host_timer["seconds"]
        over = [(x["clients"], x["late_blocks"], math.ceil(rate * x["seconds"])) for x in runs]
        out["late_blocks"] = {"met": all(late <= floor for _, late, floor in over),
                              "why": ", ".join(f"{n}: {late} (floor {floor})" for n, late, floor in over)}
    r = by_n.get(FANOUT_TARGET_N)
    if r is None:
        out["fanout"] = {"met": None, "why": "quick run"}
    else:
        f = r["fanout"]
        # Met when the mean is under the budget and at most 1% of ticks exceed it (a p99 under it).
        met = f["ticks"] > 0 and f["mean_ms"] < FANOUT_TARGET_MS and f["slow_ticks"] <= f["ticks"] / 100
        out["fanout"] = {"met": met,
                         "why": f"mean {f['mean_ms']:.3f} ms, {f['slow_ticks']} of {f['ticks']} ticks over "
                                f"{FANOUT_TARGET_MS:g} ms"}
    return out


def markdown(s: dict[str, Any]) -> str:
    """The sessions figures as a Markdown table, then the targets."""
    lines = [f"Sessions: N clients on one server, each moving the point at {s['move_hz']:g} Hz with a note a "
             f"second and subscribed to feedback; {s['seconds']:g} s each on a fresh server; load average "
             f"{s['load_average_before'][0]:.2f} before, {s['load_average_after'][0]:.2f} after.", "",
             "| clients | sent | lost | arrival → block p50 / p99 | fan-out per tick (mean; over 1 ms) "
             "| late blocks | CPU control / audio / clients | feedback per subscriber |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in s["runs"]:
        f, c, fb = r["fanout"], r["cpu_percent"], r["feedback_per_subscriber"]
        lines.append(
            f"| {r['clients']} | {r['sent']:,} | {r['lost']:,} | "
            f"{r['latency_p50_ms']:.2f} / {r['latency_p99_ms']:.2f} ms "
            f"({r['latency_p99_ms'] / r['block_ms']:.2f} blocks) | {f['mean_ms']:.3f} ms; {f['slow_ticks']} of "
            f"{f['ticks']} | {r['late_blocks']} | {c['control']:.0f}% / {c.get('audio', 0.0):.0f}% / "
            f"{c['clients']:.0f}% | {fb['packets_per_s']:.0f} packets/s, {fb['cursors_per_s']:.0f} cursors/s |")
    lines.append("")
    gcs = [(r["clients"], r["collections"]) for r in s["runs"]]
    lines.append("Garbage collections in the control process while they played (count, full ones, time in all, "
                 "longest since startup): " + "; ".join(
                     f"{n}: {g['count']}, {g['full']} full, {g['ms']:.1f} ms, longest {g['longest_ms']:.2f} ms"
                     for n, g in gcs) + ".")
    labels = {"latency": f"no loss and p99 under {LATENCY_TARGET_BLOCKS:g} blocks at {LATENCY_TARGET_N} clients",
              "late_blocks": "no late blocks beyond the host-timer floor",
              "fanout": f"fan-out to {FANOUT_TARGET_N} subscribers under {FANOUT_TARGET_MS:g} ms per tick"}
    lines.append("")
    for key, t in s["targets"].items():
        verdict = {True: "met", False: "**not met**", None: "not measured"}[t["met"]]
        lines.append(f"- {labels[key]}: {verdict} ({t['why']})")
    return "\n".join(lines) + "\n"
