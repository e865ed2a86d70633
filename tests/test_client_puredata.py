"""The Pure Data client (clients/puredata/timbrespace.pd) run for real: ``pd -nogui`` against a server.

Pd opens the shipped patch and a driver patch that, on loadbang, points it at the test server
(``; ts/connect``), sends through its receivers and sliders, and quits. The test reads what the
patch printed (the server's replies, parsed by ``oscparse``) and the server's counters.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import OscClient, ServerProc

ROOT = Path(__file__).resolve().parents[1]
PATCH = ROOT / "clients/puredata/timbrespace.pd"

pytestmark = pytest.mark.skipif(shutil.which("pd") is None, reason="pd (Pure Data) is not installed")

#: Messages the driver sends, in five bursts; the bad /note must come back as /fail. The third plays
#: the timbre engine through the patch's instrument, corner and /z receivers and slider.
BURSTS = (
    "ts/version bang \\; ts/note 60 100 \\; ts/latent 0.2 0.8 \\; ts/sync 5",
    "ts/status bang \\; ts/note 60 0 \\; ts/source BriansBank01/basic11 \\; ts/target 7 \\; "
    "ts/alpha 0.5 \\; ts/patch/load BriansBank02/WowPad \\; ts/param filter_cutoff 0.5 \\; ts/pitch 61.5 \\; "
    "ts-ui/x 0.75 \\; ts-ui/y 0.25 \\; ts-ui/alpha 0.3 \\; ts/note 200 100 \\; ts/panic bang",
    "ts/engine timbre \\; ts/source french_horn \\; ts/target piano \\; "
    "ts/corners violin oboe clarinet french_horn \\; ts-ui/z3 1.5 \\; ts/note 64 100",
    "ts/status bang \\; ts/note 64 0 \\; ts/engine patch",
    "ts/status bang",
)
SENT = 4 + 13 + 7 + 3  # OSC messages in the bursts (ts-ui/y sends /latent too: x then y)


def driver(host: str, port: int) -> str:
    """A patch that connects, sends the bursts 400 ms apart, then quits."""
    lines = ["#N canvas 0 50 400 300 12;", "#X obj 10 10 loadbang;", "#X obj 10 40 delay 300;",
             f"#X msg 10 70 \\; ts/connect {host} {port};"]
    wires = ["#X connect 0 0 1 0;", "#X connect 1 0 2 0;"]
    prev = 1
    for burst in BURSTS:
        n = len(lines) - 1
        lines += ["#X obj 10 100 delay 400;", f"#X msg 10 130 \\; {burst};"]
        wires += [f"#X connect {prev} 0 {n} 0;", f"#X connect {n} 0 {n + 1} 0;"]
        prev = n
    n = len(lines) - 1
    lines += ["#X obj 10 160 delay 400;", "#X msg 10 190 \\; pd quit;"]
    wires += [f"#X connect {prev} 0 {n} 0;", f"#X connect {n} 0 {n + 1} 0;"]
    return "\n".join(lines + wires) + "\n"


def test_puredata_patch_plays_the_server(server: ServerProc, tmp_path: Path) -> None:
    drive = tmp_path / "drive.pd"
    drive.write_text(driver(server.host, server.port))
    c = server.client()
    before = c.status()
    out = subprocess.run(["pd", "-nogui", "-noaudio", "-nomidi", "-stderr", "-open", str(PATCH), "-open", str(drive)],
                         capture_output=True, text=True, timeout=60)
    log = out.stdout + out.stderr
    after = c.status()
    c.close()
    assert out.returncode == 0, log
    # Pd itself complained about nothing (a broken object, a bad connect, an unknown method).
    assert not re.search(r"^error:|couldn't create|no method", log, re.M), log
    # The replies came back on netsend's socket and oscparse made them readable.
    assert "timbrespace: version.reply timbrespace" in log, log
    assert "timbrespace: synced 5" in log
    replies = re.findall(r"timbrespace: status\.reply clients \d+ voices (\d+) engine (\w+)", log)
    assert [engine for _, engine in replies] == ["patch", "timbre", "patch"], log
    held, timbre_held, done = (int(v) for v, _ in replies)
    assert held >= 1 and timbre_held >= 1 and done == 0, log
    assert "timbrespace: patch load.reply" in log and "BriansBank02/WowPad" in log
    fails = re.findall(r"^timbrespace-fail: (\S+)", log, re.M)
    assert fails == ["/note"], log
    # Printed once (not again as a reply), as words: no escaped spaces (issue 19).
    (fail,) = [ln for ln in log.splitlines() if "fail" in ln and "/note" in ln]
    assert fail.startswith("timbrespace-fail: /note /note argument 'pitch': 200 is out of range"), fail
    assert "\\" not in fail, fail
    # Everything arrived (plus the test's own /status), and only the bad note was rejected.
    assert after["received"] - before["received"] == SENT + 1
    assert after["rejected"] - before["rejected"] == 1


#: Joins as "pdtest" and subscribes; when the point "mover" moved arrives (its /cursor, with the
#: layer's /latent in the same flush), drags the y slider by banging it: the patch then sends the
#: point its sliders and stores show. Then leaves and quits.
FOLLOW = """#N canvas 0 50 400 300 12;
#X obj 10 10 loadbang;
#X obj 10 40 delay 300;
#X msg 10 70 \\\\; ts/connect {host} {port} \\\\; ts/hello pdtest \\\\; ts/notify 1;
#X obj 10 100 r ts/reply;
#X obj 10 130 route cursor;
#X obj 10 160 list split 1;
#X obj 10 190 list trim;
#X obj 10 220 t b;
#X obj 10 250 delay 250;
#X msg 10 280 \\\\; ts-ui/y bang;
#X obj 10 310 delay 500;
#X msg 10 340 \\\\; ts/bye bang;
#X obj 10 370 delay 300;
#X msg 10 400 \\\\; pd quit;
#X obj 200 10 delay 30000;
#X obj 200 190 route mover;
#X connect 0 0 1 0;
#X connect 1 0 2 0;
#X connect 3 0 4 0;
#X connect 4 0 5 0;
#X connect 5 1 6 0;
#X connect 6 0 15 0;
#X connect 15 0 7 0;
#X connect 7 0 8 0;
#X connect 8 0 9 0;
#X connect 8 0 10 0;
#X connect 10 0 11 0;
#X connect 10 0 12 0;
#X connect 12 0 13 0;
#X connect 0 0 14 0;
#X connect 14 0 13 0;
"""


def test_puredata_patch_follows_another_player(server: ServerProc) -> None:
    mover = server.client()
    mover.request("/hello", "mover")
    mover.send("/notify", 1)
    assert mover.expect("/done").params[0] == "/notify"
    with tempfile.TemporaryDirectory() as tmp:
        drive = Path(tmp) / "follow.pd"
        drive.write_text(FOLLOW.format(host=server.host, port=server.port).replace("\\\\", "\\"))
        proc = subprocess.Popen(["pd", "-nogui", "-noaudio", "-nomidi", "-stderr", "-open", str(PATCH),
                                 "-open", str(drive)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            log = _follow(proc, mover)
            log += proc.communicate(timeout=30)[0]  # it quits after its /bye
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, log
    assert not re.search(r"^error:|couldn't create|no method|no such object", log, re.M), log
    # What changes at the feedback rate is shown, not printed; the rest is printed.
    assert not re.search(r"^timbrespace: (latent|param|cursor) ", log, re.M), log
    mover.send("/bye")
    mover.close()


def _follow(proc: subprocess.Popen[str], mover: OscClient) -> str:
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:  # Pd prints the replies: it joined and subscribed
        lines.append(line)
        if line.startswith("timbrespace: done /notify"):
            break
    else:
        raise AssertionError("".join(lines))
    pd_id = int(re.search(r"^timbrespace: hello.reply (\d+) pdtest", "".join(lines), re.M)[1])  # type: ignore[index]
    mover.send("/latent", 0.3, 0.6)
    # The patch's sliders followed the point: banging y sends them, which the mover sees as pd's cursor.
    deadline = time.monotonic() + 10
    while True:
        m = mover.recv(max(0.1, deadline - time.monotonic()))
        if m.address == "/cursor" and m.params[0] == pd_id:
            break
    # An hsl slider holds its value in steps of 1/100 pixel: 1/(100 * (width - 1)) of its range.
    step = 1 / (100 * (160 - 1))
    assert m.params[1] == "pdtest"
    assert m.params[2] == pytest.approx(0.3, abs=1e-6) and m.params[3] == pytest.approx(0.6, abs=step), m.params
    while not (m.address == "/clients" and m.params[:2] == ["left", pd_id]):
        m = mover.recv(max(0.1, deadline - time.monotonic()))
    return "".join(lines)
