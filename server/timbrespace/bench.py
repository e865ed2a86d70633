"""``timbrespace bench``: throughput, latency, decode time, voices, late blocks; scsynth beside us.

Every figure comes from real components: a ``timbrespace serve`` process on loopback (audio on
the ``null`` backend, clocked in real time), a load generator in a process of its own, and, when
installed, scsynth on a JACK dummy server measured in the same run for the ratio. Many clients
at once: :mod:`timbrespace.bench_sessions`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from timbrespace.bench_input import bench_input
from timbrespace.bench_input import markdown as input_markdown
from timbrespace.bench_live import drained, live_server, status
from timbrespace.bench_scsynth import bench_scsynth
from timbrespace.bench_sessions import bench_sessions
from timbrespace.bench_sessions import markdown as sessions_markdown
from timbrespace.bench_timbre import bench_timbre
from timbrespace.bench_web import bench_web
from timbrespace.bench_web import markdown_rows as web_rows
from timbrespace.config import Config
from timbrespace.fsutil import atomic_write_text


def _ms(x: float) -> float:
    return round(x * 1000.0, 4)


# -- models -------------------------------------------------------------------------------------
def _call_times(call: Callable[..., object], arguments: npt.NDArray[np.float64]) -> dict[str, float]:
    """Median and 99th percentile (ms) of ``call`` on each row of ``arguments`` (a row holds one call's
    arguments), after 20 warm-up calls."""
    for row in arguments[:20]:
        call(*row)
    times = []
    for row in arguments:
        t = time.perf_counter()
        call(*row)
        times.append(time.perf_counter() - t)
    a = np.array(times)
    return {"p50_ms": _ms(float(np.median(a))), "p99_ms": _ms(float(np.percentile(a, 99)))}


def bench_decode(cfg: Config, quick: bool) -> dict[str, Any]:
    """Patch decode time for one point, for a batch of 16 and for a path's plan, on CPU (and CUDA when present)."""
    import torch

    from timbrespace.models.patch_space import PatchSpace

    out: dict[str, Any] = {}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    n = 300 if quick else 3000
    rng = np.random.default_rng(0)
    for device in devices:
        space = PatchSpace.load(cfg.patch.model, device=device, num_threads=cfg.inference.threads)
        for batch in (1, 16):
            out[f"{device}_batch{batch}"] = _call_times(space.decode_unit, rng.random((n, 1, batch, 2)))
        # A /source-/target pair's plan: its route found and the decoder read along it, once per pair
        # (then cached).
        ends = space.unit_to_latent(rng.random((n * 2, 2))).reshape(n, 2, 2)
        out[f"{device}_path-plan"] = _call_times(space.path_plan, ends)
    return out


# -- synth -------------------------------------------------------------------------------------
def _busy_patch() -> Any:
    """A busy patch: two saws, 24 dB filter with envelope, LFO on pitch and filter, reverb."""
    from timbrespace.patch import params

    v = params.DEFAULTS.copy()
    for name, value in {"osc1_waveform": 2, "osc2_waveform": 2, "osc_mix": 0, "filter_type": 0,
                        "filter_slope": 1, "filter_cutoff": 0.3, "filter_env_amount": 4, "filter_resonance": 0.4,
                        "lfo_freq": 2.0, "freq_mod_amount": 1.05, "filter_mod_amount": 0, "reverb_wet": 0.3,
                        "amp_sustain": 1, "distortion_crunch": 0.2}.items():
        v[params.INDEX[name]] = value
    return v


def bench_voices(cfg: Config, quick: bool, voices: int = 8) -> dict[str, Any]:
    """Held voices rendered offline on one core: times real time, and voices that fit in real time."""
    from timbrespace.audio.offline import OfflineRenderer
    from timbrespace.audio.synth import PatchSynth

    sr, bs = cfg.audio.sample_rate, cfg.audio.block_size
    seconds = 3.0 if quick else 10.0
    blocks = math.ceil(seconds * sr / bs)
    v = _busy_patch()
    with OfflineRenderer(sample_rate=sr, block_size=bs, channels=cfg.audio.channels) as r:
        synth = PatchSynth(polyphony=voices, sample_rate=sr)
        synth.output.out()
        synth.set_patch(v)
        for i in range(voices):
            synth.note_on(48 + 3 * i, 100)
        for _ in range(20):
            r.process_block()
        assert synth.active_voices == voices
        cpu0, t0 = time.process_time(), time.perf_counter()
        for _ in range(blocks):
            r.process_block()
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - t0
    realtime = blocks * bs / sr
    x = realtime / wall
    return {
        "voices": voices,
        "seconds_rendered": round(realtime, 3),
        "times_realtime": round(x, 2),
        "cpu_s": round(cpu, 3),
        "voices_in_realtime_one_core": int(voices * realtime / cpu),
    }


def bench_map_blocks(cfg: Config, quick: bool, voices: int = 8) -> dict[str, Any]:
    """What a block costs pyo on the patches the map decodes: a chord of ``voices`` held on each point
    of a grid over the square; the median and the dearest point's mean block, in us and in blocks.

    A retrain decodes other patches; one whose patches cost pyo more shows here before it ships.
    """
    from timbrespace.audio.offline import OfflineRenderer
    from timbrespace.audio.synth import PatchSynth
    from timbrespace.models.patch_space import PatchSpace

    sr, bs = cfg.audio.sample_rate, cfg.audio.block_size
    grid = 4 if quick else 12
    held = math.ceil(0.25 * sr / bs)  # a quarter second held on each point: attacks and decays included
    space = PatchSpace.load(cfg.patch.model, device="cpu", num_threads=1)
    cells = (np.stack(np.meshgrid(np.arange(grid), np.arange(grid)), -1).reshape(-1, 2) + 0.5) / grid
    costs: list[float] = []
    with OfflineRenderer(sample_rate=sr, block_size=bs, channels=cfg.audio.channels) as r:
        synth = PatchSynth(polyphony=voices, sample_rate=sr)
        synth.output.out()
        for values in space.decode_unit(cells):
            synth.set_patch(np.asarray(values, dtype=np.float64))
            for i in range(voices):
                synth.note_on(48 + 4 * i, 100)
            cpu0 = time.process_time()
            for _ in range(held):
                r.process_block()
            costs.append((time.process_time() - cpu0) / held)
            synth.all_notes_off()
            for _ in range(held):  # the release, not timed: the next point starts from silence
                r.process_block()
        synth.close()
    us = np.asarray(costs) * 1e6
    block_us = bs / sr * 1e6
    return {"grid": grid, "voices": voices, "model_sha256": space.sha256[:12],
            "p50_us": round(float(np.percentile(us, 50)), 1), "max_us": round(float(us.max()), 1),
            "max_blocks": round(float(us.max() / block_us), 3)}


def bench_amsynth(cfg: Config, quick: bool, voices: int = 8) -> dict[str, Any] | None:
    """The same held voices on amSynth itself (its DSSI plugin), rendered and timed in its worker process.

    None when the plugin is not installed.  The worker is single-threaded, so this is one core too.
    """
    from timbrespace.fidelity import reference

    if not reference.available():
        return None
    sr, bs = cfg.audio.sample_rate, cfg.audio.block_size
    seconds = 3.0 if quick else 10.0
    with tempfile.TemporaryDirectory(prefix="timbrespace-bench-") as home, reference.Worker(Path(home)) as w:
        w.bench(_busy_patch(), voices, 0.5, sr, bs)  # the plugin loads and its tables fill: not timed
        t = w.bench(_busy_patch(), voices, seconds, sr, bs)
    return {
        "voices": voices,
        "seconds_rendered": round(t["seconds_rendered"], 3),
        "times_realtime": round(t["seconds_rendered"] / t["wall_s"], 2),
        "cpu_s": round(t["cpu_s"], 3),
        "voices_in_realtime_one_core": int(voices * t["seconds_rendered"] / t["cpu_s"]),
    }


# -- the server under load -----------------------------------------------------------------------
def _paced(host: str, port: int, rate: float, seconds: float, address: str) -> int:
    """Send ``address`` messages at ``rate``/s from a child process (``/alpha``: /source, /target and /alpha
    in turn, so every other message changes the pair); returns how many were sent."""
    code = (
        "import socket,sys,time,random\n"
        "from timbrespace.protocol.encode import encode_message\n"
        "h,p,rate,secs,addr=sys.argv[1],int(sys.argv[2]),float(sys.argv[3]),float(sys.argv[4]),sys.argv[5]\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
        "rnd=random.Random(0);n=0;t0=time.perf_counter();period=1.0/rate\n"
        "while True:\n"
        " now=time.perf_counter()-t0\n"
        " if now>=secs: break\n"
        " due=int(now/period)+1\n"
        " while n<due:\n"
        "  if addr=='/note':\n"
        "   m=encode_message('/note',(48+n%24,(n//24)%2*100))\n"
        "  elif addr=='/alpha':\n"
        "   k=('/source','/target','/alpha')[n%3]\n"
        "   m=encode_message(k,(rnd.random(),) if k=='/alpha' else (rnd.randrange(200),))\n"
        "  else:\n"
        "   m=encode_message('/latent',(rnd.random(),rnd.random()))\n"
        "  s.sendto(m,(h,p));n+=1\n"
        " time.sleep(max(0.0,(n*period)-(time.perf_counter()-t0)))\n"
        "print(n)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, host, str(port), str(rate), str(seconds), address],
                         capture_output=True, text=True, check=True, timeout=seconds + 30)
    return int(out.stdout.strip())


def bench_server(cfg: Config, quick: bool) -> dict[str, Any]:
    """Round trips, sustained rate without loss, arrival-to-block latency and late blocks."""
    from timbrespace.protocol.loadgen import spawn_load

    d = 2.0 if quick else 5.0
    out: dict[str, Any] = {}
    with live_server(cfg) as (host, port, _):
        time.sleep(0.5)
        # Late blocks after each phase, so a nonzero total says which load caused it.
        phases: dict[str, int] = {}
        seen = [0]  # "start": from the server's start to here

        def phase(name: str) -> None:
            now = status(host, port)["late_blocks"]
            phases[name] = now - seen[0]
            seen[0] = now

        phase("start")
        out["status_256_in_flight"] = spawn_load(host, port, in_flight=256, duration=d).to_dict()
        phase("status_256_in_flight")
        out["status_one_at_a_time"] = spawn_load(host, port, in_flight=1, duration=d).to_dict()
        phase("status_one_at_a_time")
        # Sustained map moves: the highest paced rate at which the server counted every message.
        sustained = []
        for rate in ((2000, 10000, 20000) if quick else (2000, 5000, 10000, 15000, 20000, 30000)):
            before = status(host, port)["received"]
            sent = _paced(host, port, rate, d, "/latent")
            got, drain = drained(host, port, before)
            sustained.append({"rate": rate, "sent": sent, "received": got, "lost": sent - got,
                              "drain_ms": round(drain * 1000.0, 1)})
        out["latent_sustained"] = sustained
        phase("latent_sustained")
        # Kept up: nothing lost and the backlog gone within 100 ms of the last message.
        ok = [s["rate"] for s in sustained if s["lost"] == 0 and s["drain_ms"] <= 100.0]
        out["latent_rate_without_loss"] = max(ok) if ok else 0
        # Latency: notes and map moves at a musical rate, while nothing else runs.
        time.sleep(0.5)
        _paced(host, port, 200, d, "/note")
        st = status(host, port)
        out["latency_notes"] = {"p50_ms": st["latency_p50_ms"], "p99_ms": st["latency_p99_ms"]}
        phase("notes_200_per_s")
        _paced(host, port, 500, d, "/latent")
        st = status(host, port)
        block_ms = 1000.0 * st["block_size"] / st["sample_rate"]
        out["latency_latent"] = {"p50_ms": st["latency_p50_ms"], "p99_ms": st["latency_p99_ms"]}
        out["block_ms"] = round(block_ms, 4)
        phase("latent_500_per_s")
        if st["engine"] == "patch":
            # A client changing the /source-/target pair with every other message: each new pair is
            # routed and planned in the inference worker, beside the audio.
            rejected = status(host, port)["rejected"]
            out["pairs_sent"] = _paced(host, port, 300, d, "/alpha")
            out["pairs_rejected"] = status(host, port)["rejected"] - rejected
            phase("pairs_300_per_s")
        # Timbre notes: each note-on starts once the worker decoded its first frame, and ticks decode
        # every sounding note.  4,500 notes fill the latency ring, so these percentiles are theirs.
        if st["engine"] == "patch" and _engine(host, port, "timbre"):
            _paced(host, port, 1000, 4.5, "/note")
            st = status(host, port)
            out["latency_timbre_notes"] = {"p50_ms": st["latency_p50_ms"], "p99_ms": st["latency_p99_ms"]}
            phase("timbre_notes_1000_per_s")
        out["late_blocks"] = st["late_blocks"]
        out["late_blocks_by_phase"] = phases
        out["received_total"] = st["received"]
    return out


def _engine(host: str, port: int, name: str) -> bool:
    """Select an engine; False when the server does not run it."""
    from timbrespace.protocol.encode import encode_message

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        s.sendto(encode_message("/engine", (name,)), (host, port))
        with contextlib.suppress(TimeoutError):
            s.recv(65536)  # a /fail when it does not run it
            return False
    return bool(status(host, port)["engine"] == name)


def timer_probe(period: float, seconds: float, priority: int) -> dict[str, Any]:
    """How late this machine wakes a sleeping thread at each block's start, as the ``null`` audio
    backend sleeps (same period and real-time priority): the floor under the server's late blocks.

    Run it in its own process (it asks for SCHED_FIFO).  A wake-up more than one block late
    makes that block late whatever the block costs.
    """
    import numpy as np

    from timbrespace.audio.host import _realtime

    policy = _realtime(priority)
    t0 = time.monotonic()
    lateness = []
    for k in range(int(seconds / period)):
        due = t0 + k * period
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        lateness.append(time.monotonic() - due)
    ms = np.asarray(lateness) * 1000.0
    return {"seconds": seconds, "policy": policy, "wakeups": len(ms), "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "max_ms": round(float(ms.max()), 2), "over_one_block": int(np.sum(ms > period * 1000.0))}


def bench_host_timer(cfg: Config, quick: bool) -> dict[str, Any]:
    """:func:`timer_probe` in a child process, with nothing else of ours running."""
    period = cfg.audio.block_size / cfg.audio.sample_rate
    seconds = 10.0 if quick else 60.0
    code = ("import json,sys\nfrom timbrespace.bench import timer_probe\n"
            "print(json.dumps(timer_probe(float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]))))\n")
    out = subprocess.run([sys.executable, "-c", code, str(period), str(seconds), str(cfg.audio.realtime_priority)],
                         capture_output=True, text=True, check=True, timeout=seconds + 60)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


# -- report ----------------------------------------------------------------------------------------
def run_bench(cfg: Config, *, json_path: Path | None, markdown_path: Path | None, quick: bool) -> dict[str, Any]:
    """Run every benchmark, print the table, write JSON/Markdown when asked."""
    import torch

    result: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "cuda": torch.cuda.is_available()},
        "quick": quick,
    }
    print("bench: patch decode ...", file=sys.stderr)
    result["decode"] = bench_decode(cfg, quick)
    print("bench: voices ...", file=sys.stderr)
    result["voices"] = bench_voices(cfg, quick)
    print("bench: voices over the map ...", file=sys.stderr)
    result["map_blocks"] = bench_map_blocks(cfg, quick)
    print("bench: amSynth's voices ...", file=sys.stderr)
    result["amsynth_voices"] = bench_amsynth(cfg, quick)
    print("bench: timbre engine ...", file=sys.stderr)
    result["timbre"] = bench_timbre(cfg, quick)
    print("bench: the host's timer ...", file=sys.stderr)
    result["host_timer"] = bench_host_timer(cfg, quick)
    print("bench: server under load ...", file=sys.stderr)
    result["server"] = bench_server(cfg, quick)
    result["sessions"] = bench_sessions(cfg, quick, result["host_timer"])
    print("bench: the web page and OSCQuery's HTTP ...", file=sys.stderr)
    result["web"] = bench_web(cfg, quick)
    print("bench: live input ...", file=sys.stderr)
    result["input"] = bench_input(cfg, quick, result["host_timer"])
    print("bench: scsynth ...", file=sys.stderr)
    result["scsynth"] = bench_scsynth(cfg, quick)
    table = markdown(result)
    print(table)
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(result, indent=1) + "\n")
    if markdown_path is not None:
        atomic_write_text(markdown_path, table)
    return result


def _cpu_ratio(ours: dict[str, Any], theirs: dict[str, Any]) -> float:
    """Our speed over amSynth's by CPU time: steadier than wall time on a loaded machine."""
    return float((ours["seconds_rendered"] / ours["cpu_s"]) / (theirs["seconds_rendered"] / theirs["cpu_s"]))


def markdown(r: dict[str, Any]) -> str:
    """The figures as a Markdown table."""
    s = r["server"]
    sc = r.get("scsynth")
    rt256 = s["status_256_in_flight"]
    rt1 = s["status_one_at_a_time"]

    def ratio(ours: float, key: str) -> str:
        if not sc:
            return "scsynth not installed"
        theirs = sc[key]["rate"]
        return f"scsynth {theirs:,.0f}/s; ratio {ours / theirs:.2f}x"

    block = s["block_ms"]
    rows = [
        ("`/status` round trips, 256 in flight (UDP)", f"{rt256['rate']:,.0f}/s, loss {rt256['lost']}",
         ratio(rt256["rate"], "status_256_in_flight")),
        ("`/status` round trips, one at a time", f"{rt1['rate']:,.0f}/s (p50 {rt1['p50_ms']:.3f} ms)",
         ratio(rt1["rate"], "status_one_at_a_time")),
        ("`/latent` sustained with no loss", f"{s['latent_rate_without_loss']:,}/s",
         "paced sender; every message counted by the server, backlog gone within 100 ms"),
        ("arrival → block, notes (p50 / p99)",
         f"{s['latency_notes']['p50_ms']:.2f} / {s['latency_notes']['p99_ms']:.2f} ms",
         f"p99 = {s['latency_notes']['p99_ms'] / block:.2f} blocks of {block:.2f} ms"),
        ("arrival → block, `/latent` (p50 / p99)",
         f"{s['latency_latent']['p50_ms']:.2f} / {s['latency_latent']['p99_ms']:.2f} ms",
         f"p99 = {s['latency_latent']['p99_ms'] / block:.2f} blocks; decode included"),
        ("late blocks under all of the above", f"{s['late_blocks']}",
         f"the audio process's own count, over {s['received_total']:,} messages"
         + (" (" + ", ".join(f"{k} {v}" for k, v in s.get("late_blocks_by_phase", {}).items() if v) + ")"
            if s["late_blocks"] else "")),
    ]
    ht = r.get("host_timer")
    if ht:
        rows += [
            (f"host timer: wake-ups over one block late, {ht['seconds']:.0f} s idle",
             f"{ht['over_one_block']} of {ht['wakeups']:,}",
             f"a bare sleep loop at the audio's period ({ht['policy']}), nothing of ours running: p99 "
             f"{ht['p99_ms']:.2f} ms, max {ht['max_ms']:.1f} ms late; each such wake-up is a late block "
             "whatever the block costs"),
    ]
    for k, v in r["decode"].items():
        rows.append((f"patch decode, {k.replace('_', ', ')}", f"{v['p50_ms']:.3f} ms (p99 {v['p99_ms']:.3f})",
                     "PatchSpace.path_plan: once per /source and /target pair" if k.endswith("path-plan")
                     else "PatchSpace.decode_unit"))
    vo = r["voices"]
    am = r.get("amsynth_voices")
    rows.append((f"{vo['voices']} held voices, offline, one core", f"{vo['times_realtime']:.1f}x real time",
                 f"≈ {vo['voices_in_realtime_one_core']} voices fit in real time"
                 + (f"; amSynth {am['times_realtime']:.1f}x: ratio {vo['times_realtime'] / am['times_realtime']:.2f}x"
                    f" (by CPU time {_cpu_ratio(vo, am):.2f}x)" if am else "; amSynth's plugin not installed")))
    if am:
        rows.append((f"{am['voices']} held voices, amSynth itself (DSSI plugin), one core",
                     f"{am['times_realtime']:.1f}x real time",
                     f"≈ {am['voices_in_realtime_one_core']} voices fit in real time; same patch and notes, "
                     "timed in its worker process"))
    mb = r.get("map_blocks")
    if mb:
        rows.append((f"{mb['voices']} held voices on each patch of the map's {mb['grid']}x{mb['grid']} grid",
                     f"block p50 {mb['p50_us']:.0f} us, dearest point {mb['max_us']:.0f} us",
                     f"the dearest is {mb['max_blocks']:.2f} of a block's time (model {mb['model_sha256']}); "
                     "a retrain whose patches cost pyo more shows here"))
    tb = r.get("timbre")
    if tb:
        labels = {"decode": "timbre decode", "tick": "timbre tick (decode + wavetables)",
                  "tickmap": "timbre tick, learned map point moving every tick"}
        for key in ("decode_cpu_1", "decode_cpu_16", "tick_cpu_16", "tickmap_cpu_16", "decode_cuda_16",
                    "tick_cuda_16", "tickmap_cuda_16"):
            if key in tb:
                what, device, n = key.split("_")
                label = labels[what]
                rows.append((f"{label}, {device}, {n} voice{'s' if n != '1' else ''}",
                             f"{tb[key]['p50_ms']:.3f} ms (p99 {tb[key]['p99_ms']:.3f})",
                             f"one frame per voice; a tick every {tb['hop_ms']:.1f} ms"))
    lt = s.get("latency_timbre_notes")
    if lt:
        rows.append(("arrival → block, timbre notes (p50 / p99)", f"{lt['p50_ms']:.2f} / {lt['p99_ms']:.2f} ms",
                     f"p99 = {lt['p99_ms'] / block:.2f} blocks; the first frame's decode included (1,000 notes/s)"))
    if r.get("web"):
        rows += web_rows(r["web"], block)
    m = r["machine"]
    lines = [f"Measured {r['date']} on {m['cpus']} CPUs ({m['platform']}), "
             f"torch {m['torch']}{' (quick run)' if r['quick'] else ''}.", "",
             "| figure | Timbrespace | note |", "| --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    if r.get("sessions"):
        lines += ["", sessions_markdown(r["sessions"]).rstrip("\n")]
    if r.get("input"):
        lines += ["", input_markdown(r["input"]).rstrip("\n")]
    return "\n".join(lines) + "\n"
