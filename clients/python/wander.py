"""A little generative piece for Timbrespace: a slow walk across the map under a pentatonic line.

Finds the server with zeroconf (or takes --host/--port), then for --seconds plays notes from a
scale while the map point drifts, and prints the server's /status at the end. Stop with Ctrl-C:
it releases its notes on the way out. Every /fail the server sends back is printed on stderr; if
it refuses what is sent at the start (--engine, --corners), the piece does not play and the exit
status is 2.

    .venv/bin/python clients/python/wander.py              # find a server on the LAN
    .venv/bin/python clients/python/wander.py --host 127.0.0.1 --port 57130 --seconds 20
    .venv/bin/python clients/python/wander.py --engine timbre --corners oboe trumpet cello bassoon
    .venv/bin/python clients/python/wander.py --name wanderer   # join the session by name

With --name it says /hello NAME first (the server then shows its point to the other players as a
/cursor, and a restart under the same name gets the same id back) and /bye at the end, which
releases whatever it still holds.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import socket
import sys
import time

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

SCALE = (0, 2, 4, 7, 9)  # major pentatonic


def message(address: str, *args: int | float | str) -> bytes:
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def find_server(timeout: float) -> tuple[str, int, str]:
    """(host, port, name) of the first Timbrespace server advertised with zeroconf."""
    from timbrespace.protocol.discovery import browse

    for found in asyncio.run(browse(timeout, protocols=("udp",))):
        if found.txt.get("api"):
            return found.host, found.port, found.name
    raise SystemExit(f"no Timbrespace server found with zeroconf in {timeout:.0f} s; give --host")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host")
    p.add_argument("--port", type=int, default=57130)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--tempo", type=float, default=96.0, help="beats per minute (a note per beat)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--engine", choices=("patch", "timbre"), help="select this engine first (default: as it is)")
    p.add_argument("--corners", nargs=4, metavar="INSTRUMENT",
                   help="timbre engine: the map's corner instruments (0,0) (1,0) (0,1) (1,1)")
    p.add_argument("--name", help="join the session as NAME (/hello first, /bye at the end)")
    a = p.parse_args(argv)
    if a.host is None:
        a.host, a.port, name = find_server(3.0)
        print(f"found {name!r} at {a.host}:{a.port}")
    rnd = random.Random(a.seed)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    addr = (socket.gethostbyname(a.host), a.port)

    def send(address: str, *args: int | float | str) -> None:
        sock.sendto(message(address, *args), addr)

    def report(reply: OscMessage) -> bool:
        """Print a /fail on stderr; True when it was one."""
        if reply.address != "/fail":
            return False
        where, why = [*reply.params, "", ""][:2]
        print(f"wander.py: the server refused {where}: {why}", file=sys.stderr)
        return True

    def drain() -> None:
        """Report the /fail replies that have arrived, without waiting."""
        sock.setblocking(False)
        try:
            while True:
                report(OscMessage(sock.recv(65536)))
        except (BlockingIOError, InterruptedError):
            pass
        finally:
            sock.setblocking(True)

    if a.name:
        send("/hello", a.name)
    if a.engine:
        send("/engine", a.engine)
    if a.corners:
        send("/corners", *a.corners)
    # /synced comes after any /fail for what was sent before it: the set-up was taken, or not.
    send("/sync", 1)
    sock.settimeout(3.0)
    refused = False
    try:
        while (reply := OscMessage(sock.recv(65536))).address != "/synced":
            refused |= report(reply)
            if reply.address == "/hello.reply":
                print(f"joined as {reply.params[1]!r} (id {reply.params[0]})")
    except TimeoutError:
        print(f"wander.py: no answer from {a.host}:{a.port} within 3 s; is a Timbrespace server running there?",
              file=sys.stderr)
        return 1
    if refused:
        print("wander.py: not playing; fix the options above", file=sys.stderr)
        if a.name:
            send("/bye")
        return 2
    beat = 60.0 / a.tempo
    x, y = rnd.random(), rnd.random()
    heading = rnd.uniform(0, 2 * math.pi)
    sounding: int | None = None
    start = time.monotonic()
    try:
        while time.monotonic() - start < a.seconds:
            # The map point drifts in small steps, 20 a beat, bouncing off the edges.
            for _ in range(20):
                heading += rnd.gauss(0.0, 0.15)
                x += 0.004 * math.cos(heading)
                y += 0.004 * math.sin(heading)
                if not 0.0 <= x <= 1.0:
                    heading = math.pi - heading
                    x = min(max(x, 0.0), 1.0)
                if not 0.0 <= y <= 1.0:
                    heading = -heading
                    y = min(max(y, 0.0), 1.0)
                send("/latent", x, y)
                time.sleep(beat / 20)
            drain()
            if sounding is not None:
                send("/note", sounding, 0)
                sounding = None
            if rnd.random() < 0.8:  # a rest now and then
                sounding = 48 + 12 * rnd.randrange(2) + rnd.choice(SCALE)
                send("/note", sounding, rnd.randrange(70, 120))
    except KeyboardInterrupt:
        pass
    finally:
        if sounding is not None:
            send("/note", sounding, 0)
    sock.settimeout(2.0)
    if a.name:
        # Leaving releases anything this client still holds, and tells the other players.
        send("/bye")
    send("/status")
    try:
        while True:
            reply = OscMessage(sock.recv(65536))
            report(reply)
            if reply.address == "/done" and reply.params[:1] == ["/bye"]:
                print(f"left the session (id {reply.params[1]})")
            if reply.address == "/status.reply":
                p_ = reply.params
                print(" ".join(f"{k}={v}" for k, v in zip(p_[::2], p_[1::2])))
                break
    except TimeoutError:
        print("no /status reply", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
