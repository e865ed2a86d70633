"""The command line as users call it: exit codes, messages on stderr, files written."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from zeroconf import ServiceInfo, Zeroconf

from timbrespace.cli import main


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "timbrespace", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_render_command_writes_a_wav(tmp_path: Path) -> None:
    score = tmp_path / "s.yaml"
    score.write_text("- {time: 0, address: /patch/load, args: [BriansBank01/basic11]}\n"
                     "- {time: 0.05, address: /note, args: [60, 100]}\n"
                     "- {time: 0.5, address: /note, args: [60, 0]}\n"
                     "- {time: 0.6, address: /note, args: [300, 0]}\n")
    out = tmp_path / "o.wav"
    r = run("render", str(score), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "out of range" in r.stderr  # the bad event is reported, the rest rendered
    with wave.open(str(out)) as w:
        assert w.getnchannels() == 2 and w.getframerate() == 48000
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert pcm.size >= 2 * 48000 * 2.6 and np.abs(pcm).max() > 1000


def test_errors_go_to_stderr_with_nonzero_exit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "x.wav")]) == 2
    assert "cannot read score" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("network: {port: -1}\n")
    assert main(["serve", "--config", str(bad)]) == 2
    assert "network.port = -1 is out of range" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["serve", "--audio", "alsa"])
    assert e.value.code == 2


def test_serve_reports_a_port_in_use(tmp_path: Path) -> None:
    import socket

    from conftest import write_config

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        cfg = write_config(tmp_path, network={"port": port})
        r = run("serve", "--config", str(cfg), timeout=120)
    assert r.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr


def test_train_and_map(tmp_path: Path) -> None:
    # Without hearing: rendering every training preset is test_patch_hearing's, on a small bank.
    r = run("train", "patch-vae", "--epochs", "2", "--sound-weight", "0", "--quiet", "--out", str(tmp_path / "m"))
    assert r.returncode == 0, r.stderr
    ckpt = tmp_path / "m" / "patch-vae.pt"
    assert ckpt.exists() and (tmp_path / "m" / "MODEL_CARD.md").exists()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"patch: {{model: {ckpt}}}\n")
    png = tmp_path / "map.png"
    r = run("map", "patch-vae", "--out", str(png), "--grid", "4", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_quick_reports_every_figure(tmp_path: Path) -> None:
    """Runs the benchmark's short form; figures are reported, never asserted as timings here."""
    out = tmp_path / "b.json"
    md = tmp_path / "b.md"
    r = run("bench", "--quick", "--json", str(out), "--markdown", str(md), timeout=600)
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    s = data["server"]
    for key in ("status_256_in_flight", "status_one_at_a_time", "latency_notes", "latency_latent"):
        assert key in s
    assert s["status_256_in_flight"]["received"] > 0
    assert "late_blocks" in s and data["voices"]["times_realtime"] > 0
    mb = data["map_blocks"]  # every point of the grid played and timed
    assert mb["grid"] == 4 and 0 < mb["p50_us"] <= mb["max_us"] and mb["max_blocks"] > 0
    assert "dearest point" in md.read_text()
    assert sum(s["late_blocks_by_phase"].values()) == s["late_blocks"]
    # Pair changes were played, not refused: each /source, /target and /alpha valid.
    assert "pairs_300_per_s" in s["late_blocks_by_phase"] and s["pairs_sent"] > 0 and s["pairs_rejected"] == 0
    ht = data["host_timer"]
    assert ht["wakeups"] == int(ht["seconds"] / (256 / 48000)) and 0 <= ht["over_one_block"] <= ht["wakeups"]
    assert data["decode"]["cpu_batch1"]["p50_ms"] > 0 and data["decode"]["cpu_path-plan"]["p50_ms"] > 0
    ss = data["sessions"]
    assert [r["clients"] for r in ss["runs"]] == [1, 8]
    for r in ss["runs"]:
        assert r["subscribers"] == r["clients"] and r["sent"] > 0  # every client joined, subscribed and played
        assert r["lost"] == r["sent"] - r["received"] and r["fanout"]["ticks"] > 0
        assert {"latency_p99_ms", "late_blocks", "feedback_per_subscriber"} <= set(r)
        assert {"control", "audio", "clients"} <= set(r["cpu_percent"])
        g = r["collections"]  # the control process's collector while they played
        assert 0 <= g["full"] <= g["count"] and 0 <= g["over_1_ms"] <= g["count"] and g["ms"] >= 0.0
    assert set(ss["targets"]) == {"latency", "late_blocks", "fanout"}
    web = data["web"]
    assert web["http_namespace"]["requests"] > 0 and web["http_value"]["requests"] > 0
    if shutil.which("chromium"):  # the page's touch figures need the browser (make deps installs it)
        t = web["touch"]  # each joined move: its touch-to-send plus its arrival-to-block, both >= 0
        assert t["sent"] > 0 and t["joined"] > 0 and t["arrival_to_block_p99_ms"] > 0
        assert t["touch_to_block_p50_ms"] >= t["arrival_to_block_p50_ms"]
        assert t["touch_to_block_p99_ms"] >= t["arrival_to_block_p99_ms"]
    li = data["input"]  # the live input: pitch and latency in rendered samples, costs in CPU time
    assert 0.0 <= li["pitch"]["within_25c"] <= 1.0 and li["latency"]["notes"] > 0
    assert {"sound", "pitch"} <= set(li["latency"]) and li["cost"]["audio_on"]["cpu_percent"] > 0
    assert li["latency"]["sound"]["counted"] > 0  # what /input/status reports, counted by the audio side
    # Beside 8 patch voices and 16 timbre notes, input off then on: every voice sounds, the input is heard.
    assert [p["voices"] for p in li["load"]["phases"]] == [24, 24] and li["load"]["phases"][1]["input_level_db"] > -60
    if shutil.which("espeak-ng"):  # the voice phrase needs it (a Debian package)
        assert 0.0 <= li["voice"]["trumpet"]["within_25c"] <= 1.0 and li["voice"]["trumpet"]["frames"] > 0
    if li["unseen"] is not None:  # GM programs no model was trained on (the SoundFont's, when installed)
        assert {"whistle, trumpet", "voice oohs, trumpet", "ocarina, trumpet"} == set(li["unseen"])
        assert all(v["frames"] > 0 for v in li["unseen"].values())
    if li["judge"] is not None:  # the evaluation's judge, when its notes are there (timbrespace data soundfont)
        rows = li["judge"]["inputs"]["sawtooth (vibrato, glide)"]["trumpet"]
        assert [r["alpha"] for r in rows] == [0.0, 1.0] and all(0.0 <= r["p_target"] <= 1.0 for r in rows)
    text = md.read_text()
    assert "| figure |" in text and "| clients |" in text and "Live input" in text


def test_train_timbre_map_names_what_is_wrong(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["train", "timbre-map", "--model", str(tmp_path / "none.pt")]) == 2
    assert f"no checkpoint at {tmp_path / 'none.pt'}" in capsys.readouterr().err
    patch = Path(__file__).resolve().parents[1] / "models" / "patch-vae" / "patch-vae.pt"
    assert main(["train", "timbre-map", "--model", str(patch)]) == 2
    assert "a timbre-gmvae checkpoint was expected, got 'patch-vae'" in capsys.readouterr().err
    assert main(["train", "--epochs", "3", "timbre-map"]) == 2
    assert "write the options after the model: timbrespace train timbre-map [options]" in capsys.readouterr().err


def test_training_modules_run_as_scripts_name_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "ratings.json"
    bad.write_text('{"format": 1}', encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "timbrespace.models.train_patch_vae", "--out", str(tmp_path / "out"),
                        "--ratings", str(bad)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"timbrespace train: {bad}: expected a JSON object" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


def test_serve_refuses_a_record_path_it_cannot_write(tmp_path: Path) -> None:
    # Issue 19: pyo printed one line, then the server ran, recorded nothing and exited 0.
    from conftest import write_config

    cfg = write_config(tmp_path)
    for path, why in ((tmp_path / "missing/dir/take.wav", "does not exist"), (tmp_path, "is a folder")):
        r = run("serve", "--config", str(cfg), "--record", str(path), timeout=60)
        assert r.returncode == 2, r.stdout + r.stderr
        assert f"timbrespace serve: --record {path}:" in r.stderr and why in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and "ready" not in r.stdout


# -- timbrespace send (issue 19): every call ends with an answer, or one line saying why not ----


def test_send_says_when_nothing_answers(tmp_path: Path) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never answers
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        for address in ("/status", "/note"):  # with a reply of its own, and one confirmed by /sync
            r = run("send", "--host", "127.0.0.1", "--port", str(port), "--wait", "0.3", address, "60", "0")
            assert r.returncode == 1 and r.stdout == "", r
            assert f"no reply from 127.0.0.1:{port} (UDP) within 0.3 s" in r.stderr, r.stderr
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:  # bound, not listening: refused
        closed.bind(("127.0.0.1", 0))
        r = run("send", "--tcp", "--host", "127.0.0.1", "--port", str(closed.getsockname()[1]), "/status")
    assert r.returncode == 2 and "connection refused" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = run("send", "--host", "no-such-host.invalid", "/status")
    assert r.returncode == 2 and "unknown host 'no-such-host.invalid'" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1


def test_send_confirms_delivery_and_survives_a_closed_pipe(server: Any) -> None:
    host = ["--host", server.host, "--port", str(server.port)]
    r = run("send", *host, "/note", "60", "0")  # no reply of its own: /synced confirms it, silently
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r
    r = run("send", *host, "/note", "200", "0")
    assert r.returncode == 1 and r.stdout.startswith("/fail '/note'"), r
    r = run("send", "--tcp", *host, "/note", "60", "0")
    assert r.returncode == 0 and r.stdout == "", r
    # `| head`: the reader is gone before the reply is printed.
    p = subprocess.Popen([sys.executable, "-m", "timbrespace", "send", *host, "/patch/list", "0", "64"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()
    err = p.stderr.read()
    p.wait(30)
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_send_finds_servers_and_says_which_it_picked(tmp_path: Path) -> None:
    import uuid

    from conftest import start_server

    tag = uuid.uuid4().hex[:8]
    for n in "ab":
        (tmp_path / n).mkdir()
    servers = [start_server(tmp_path / n, network={"zeroconf": True, "name": f"ts-{tag}-{n}",
                                                   "interfaces": ["127.0.0.1"]}) for n in ("a", "b")]
    # And a record with no server behind it, first by name: what a cache keeps of a server gone.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        nobody = probe.getsockname()[1]
    zc = Zeroconf(interfaces=["127.0.0.1"])
    ghost = ServiceInfo("_osc._udp.local.", f"ts-{tag}-0._osc._udp.local.", port=nobody,
                        properties={"txtvers": "1", "api": "1.0"}, server="ghost.local.",
                        parsed_addresses=["127.0.0.1"])
    zc.register_service(ghost)
    try:
        r = run("send", "--list", timeout=60)
        assert r.returncode == 0, r.stderr
        for n, s in zip("ab", servers):
            assert f"ts-{tag}-{n}\t" in r.stdout and f"\t{s.port}\n" in r.stdout, r.stdout
        assert f"ts-{tag}-0\t127.0.0.1\t{nobody}\n" in r.stdout, r.stdout
        r = run("send", "/version", timeout=60)
        # The ghost comes first by name; it does not answer, so a server that does is used.
        assert r.returncode == 0 and r.stdout.startswith("/version.reply 'timbrespace'"), r
        assert "servers found" in r.stderr and f"using 'ts-{tag}-a'" in r.stderr and "--list" in r.stderr, r.stderr
        assert f"'ts-{tag}-0' at 127.0.0.1:{nobody} did not answer" in r.stderr, r.stderr
    finally:
        zc.unregister_service(ghost)
        zc.close()
        for s in servers:
            s.stop()


def test_transfer_refuses_alpha_outside_its_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Issue 19: --alpha 3 was accepted and extrapolated far past the target instrument.
    for alpha in ("3", "-0.5"):
        code = main(["transfer", str(tmp_path / "in.wav"), "--target", "piano", "--alpha", alpha,
                     "--out", str(tmp_path / "out.wav")])
        assert code == 2
        assert f"--alpha {float(alpha):g} is out of range [0, 1]" in capsys.readouterr().err
    assert main(["transfer", str(tmp_path / "in.wav"), "--target", "piano", "--alpha", "nan",
                 "--out", str(tmp_path / "out.wav")]) == 2
    assert "--alpha nan is not a finite number; expected a number in [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "out.wav").exists()
