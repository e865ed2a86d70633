"""Keeps the audio process running and in step with the control side (docs/architecture.md, "Audio faults").

The control side reads the audio process's replies, retries releases the command socket had no
room for, tells the audio side every second (and after a stall) which voices it holds, and
watches the process: one that died or that JACK stopped running is replaced, on the ``null``
backend while the JACK server is away and back on JACK once it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

from timbrespace.app import App
from timbrespace.audio.host import AudioError, AudioProcess, jack_running
from timbrespace.engines.base import HandlerError
from timbrespace.link import commands as C
from timbrespace.protocol.transport import Peer

log = logging.getLogger(__name__)

Backend = Literal["jack", "portaudio", "null"]

#: How often the control side checks the audio process (alive, stalled) and reconciles voices.
WATCH_S = 0.05
#: Every this many seconds (and after a stall) the audio side releases voices the control side does
#: not hold: whatever lost a note-off, no note stays stuck for longer.
RECONCILE_S = 1.0
#: A JACK backend that has rendered nothing for this long is checked: is the JACK server still there?
JACK_CHECK_S = 0.25
#: A JACK backend stalled this long while the JACK server runs is restarted (JACK drops a client
#: that misses its deadlines too long).
JACK_STALL_S = 3.0
#: While JACK is away the audio runs on null and JACK is looked for this often, doubling after
#: each failed move back up to JACK_RETRY_MAX_S.
JACK_RETRY_S = 1.0
JACK_RETRY_MAX_S = 30.0
#: A restarted audio process must render within this long.
RESTART_TIMEOUT_S = 30.0
#: More audio restarts than this within RESTART_WINDOW_S: the server exits (status 1) rather than loop.
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0


class AudioSupervisor:
    """The control side's upkeep of one :class:`AudioProcess` serving one :class:`App`.

    ``send`` delivers a reply to a peer (the transport's); ``stop`` is set when the server must
    end, with :attr:`status` 1 when the audio cannot be kept running.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, audio: AudioProcess, app: App,
                 send: Callable[[Peer, str, tuple[Any, ...]], None], stop: asyncio.Event) -> None:
        self._loop = loop
        self.audio = audio
        self.app = app
        self._send = send
        self._stop = stop
        #: The exit status the server should return.
        self.status = 0
        # Started on JACK: a fallback to null moves back to JACK when it returns.
        self._on_jack = audio.backend == "jack"
        self._restarts: deque[float] = deque()
        self._pump: asyncio.TimerHandle | None = None
        self._period = audio.block_size / audio.sample_rate
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Read replies, pump waiting releases and watch the process from now on."""
        self._loop.add_reader(self.audio.fileno(), self._on_replies)
        self.audio.outbox.on_pending = self._arm_pump
        self._task = asyncio.create_task(self._watch())

    async def close(self) -> None:
        """Stop all of it (the audio process itself is stopped by its owner)."""
        if self._pump is not None:
            self._pump.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._loop.remove_reader(self.audio.fileno())

    # -- replies and releases ------------------------------------------------------------------
    def _on_replies(self) -> None:
        for reply in self.audio.replies():
            out = self.app.on_synced(int(reply.args[0])) if reply.args else None
            if out is not None:
                peer, (address, args) = out
                self._send(peer, address, args)

    def _pump_releases(self) -> None:
        # Releases that found the socket full are retried every block until they are through.
        self._pump = self._loop.call_later(self._period, self._pump_releases) if self.audio.pump() else None

    def _arm_pump(self) -> None:
        if self._pump is None:
            self._pump = self._loop.call_later(self._period, self._pump_releases)

    def reconcile(self) -> None:
        """Tell the audio side what each layer's engines hold; it releases the rest."""
        for layer in self.app.layers:
            for e in layer.engines.values():
                self.audio.send(C.with_layer(C.held(e.name, e.held()), layer.index))

    # -- faults --------------------------------------------------------------------------------
    async def restart(self, target: Backend) -> bool:
        """Replace the audio process with one on ``target`` (else null); False when it runs elsewhere.

        AudioError when not even a null process starts.
        """
        audio, app = self.audio, self.app
        rate = audio.sample_rate
        self._loop.remove_reader(audio.fileno())
        app.audio_changed("restarting")
        audio.heard = [layer.engine.name for layer in app.layers]
        audio.sounds = tuple(layer.sound for layer in app.layers)  # as set live, not as configured
        audio.restart(target)
        deadline = self._loop.time() + RESTART_TIMEOUT_S
        try:
            while (started := audio.poll_started()) is None:
                if self._loop.time() > deadline:
                    raise AudioError(f"the audio process did not start within {RESTART_TIMEOUT_S:.0f} s")
                await asyncio.sleep(WATCH_S)
            if audio.sample_rate != rate:
                raise AudioError(f"{started} runs at {audio.sample_rate} Hz and this server at {rate} Hz "
                                 "(restart the server to follow it)")
        except AudioError as e:
            log.error("audio on %s: %s", target, e)
            audio.sample_rate = rate
            if target == "null":
                raise
            return await self.restart("null")
        finally:
            self._loop.add_reader(audio.fileno(), self._on_replies)
        # The new process holds no voice: the control side forgets the notes it held, so that
        # nothing it later releases or reconciles refers to sound from before the fault.
        for engine in app.all_engines():
            with contextlib.suppress(HandlerError):
                engine.panic(0.0)
        for layer in app.layers:
            layer.engine.activate(0.0)  # the patch in effect (also in the mailbox, which it reads first)
        app.audio_changed(started)
        self.reconcile()
        log.warning("audio running again on %s", started)
        return started == target

    def _fault(self, stall: float) -> str:
        """What is wrong with the audio process, or ""."""
        audio = self.audio
        if not audio.alive:
            return f"the audio process died (exit code {audio.exitcode})"
        if audio.backend == "jack" and stall >= JACK_CHECK_S and not jack_running():
            return "the JACK server stopped"
        if audio.backend == "jack" and stall >= JACK_STALL_S:
            return f"JACK has not run the audio process for {stall:.1f} s"
        return ""

    def _give_up(self, why: str) -> None:
        log.error("%s", why)
        self.status = 1
        self._stop.set()

    async def _recover(self, fault: str) -> bool:
        """Restart after ``fault``; False when the server must end instead."""
        now = self._loop.time()
        restarts = self._restarts
        restarts.append(now)
        while restarts[0] < now - RESTART_WINDOW_S:
            restarts.popleft()
        if len(restarts) > MAX_RESTARTS:
            self._give_up(f"{fault}, the {len(restarts)}. time in {RESTART_WINDOW_S:.0f} s; shutting down")
            return False
        backend = self.audio.backend
        target: Backend = "null"
        if backend in ("jack", "portaudio") and (backend != "jack" or jack_running()):
            target = "jack" if backend == "jack" else "portaudio"
        log.error("%s; restarting the audio process on %s%s", fault, target,
                  " until the JACK server is back" if self._on_jack and target != "jack" else "")
        try:
            await self.restart(target)
        except AudioError:
            self._give_up("the audio process cannot be restarted; shutting down")
            return False
        return True

    async def _watch(self) -> None:
        loop = self._loop
        stalled = 0.0
        reconciled = loop.time()
        retry_at, retry_wait = 0.0, JACK_RETRY_S
        while not self._stop.is_set():
            await asyncio.sleep(WATCH_S)
            stall = self.audio.stats.stall_s(time.monotonic())
            fault = self._fault(stall)
            if fault:
                if await self._recover(fault):
                    stalled, reconciled = 0.0, loop.time()
                    retry_at, retry_wait = loop.time() + JACK_RETRY_S, JACK_RETRY_S
                continue
            if self._on_jack and self.audio.backend != "jack" and loop.time() >= retry_at and jack_running():
                log.warning("the JACK server is back; moving the audio to it")
                if not await self.restart("jack"):
                    retry_wait = min(retry_wait * 2.0, JACK_RETRY_MAX_S)
                retry_at = loop.time() + retry_wait
                stalled, reconciled = 0.0, loop.time()
                continue
            if stall and not stalled:
                log.warning("audio stalled: no block rendered for %.2f s", stall)
            elif stalled and not stall:
                log.warning("audio resumed after a stall of %.2f s; reconciling voices", stalled)
                self.reconcile()
                reconciled = loop.time()
            stalled = stall
            if not stall and loop.time() - reconciled >= RECONCILE_S:
                self.reconcile()
                reconciled = loop.time()
