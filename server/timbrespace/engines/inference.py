"""Model inference off the event loop: one worker owns the torch device, engines hand it jobs.

An engine submits a :class:`Job` (a model call's inputs, what to do with its result) and goes
on; jobs of the same :class:`Kind` run as one batch, across engines (and, later, layers). The
results come back to the event loop, which does every write to the synth link itself, so the
link sees the loop's order:

* an *ordered* job (a map point, a note's first frame) holds back every link write made after
  it (:class:`OrderedLink`) until its result has been applied: a note-on whose first frame is
  still being decoded cannot be overtaken by its own note-off, and a ``/sync`` or a note sent
  after a map move follows the move, as when the decode ran inline;
* an unordered job (a tick's frames) is applied when it lands; its owner checks it is not stale.

A newer job of the same owner replaces one that has not started (one pending map point per
engine, one tick's frames), so the queue stays bounded however fast messages come.

:class:`WorkerInference` runs the jobs on its own thread; :class:`InlineInference` runs them on
the caller's thread, at once or when the owner flushes (the offline renderer: block by block,
deterministic), with the same semantics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from timbrespace.engines.base import RawLink
from timbrespace.link import commands as C
from timbrespace.ratelog import RateLimitedLog

log = logging.getLogger(__name__)
_log_refused = RateLimitedLog(log, 5, "refused commands")


class Kind(Protocol):
    """A batched model call; jobs whose kinds are equal (and hash alike) run as one batch."""

    def run(self, inputs: Sequence[Any]) -> Sequence[Any]:
        """One result per job's inputs, in order (runs on the worker: no link writes here)."""
        ...


@dataclass(eq=False)
class Job:
    """One request: ``kind.run`` over ``inputs`` (batched with others), then ``deliver(result)`` on the loop."""

    kind: Kind
    inputs: Any
    deliver: Callable[[Any], None]
    #: A newer job of the same owner replaces this one while it has not started.
    owner: Hashable
    #: Whether link writes made after this job wait until it has been delivered.
    ordered: bool = False
    result: Any = None
    done: bool = False  # ran (or failed, or was cancelled): an ordered job no longer holds the link
    cancelled: bool = False


class OrderedLink:
    """The synth link as the engines see it: writes made behind an ordered job wait for it."""

    def __init__(self, raw: RawLink) -> None:
        self.raw = raw
        self._queue: deque[Job | Callable[[], None]] = deque()
        self._at_head = False  # writing on behalf of the queue's head: straight through
        self.refused = 0  # sends that had waited and were then refused by the raw link

    @property
    def idle(self) -> bool:
        """Whether nothing waits (a write goes through at once)."""
        return not self._queue or self._at_head

    def send(self, data: bytes) -> bool:
        """An event command; True when sent or queued behind an ordered job (sent in order later)."""
        if self.idle:
            return self.raw.send(data)
        self._queue.append(lambda: self._late_send(data))
        return True

    def put_patch(self, values: npt.NDArray[np.float64], arrival: float, layer: int = 0) -> None:
        """``layer``'s newest patch, in order with the commands."""
        if self.idle:
            self._put(values, arrival, layer)
        else:
            self._queue.append(lambda: self._put(values, arrival, layer))

    def _put(self, values: npt.NDArray[np.float64], arrival: float, layer: int) -> None:
        if layer:
            self.raw.put_patch(values, arrival, layer)
        else:  # as a one-layer link (a test's) takes it
            self.raw.put_patch(values, arrival)

    def layer(self, layer: int) -> LayerLink:
        """This link as one layer's engines see it."""
        return LayerLink(self, layer)

    def after(self, action: Callable[[], None]) -> None:
        """Run ``action`` (on the loop) once everything queued before it has been applied; now if idle."""
        if self.idle:
            action()
        else:
            self._queue.append(action)

    def hold(self, job: Job) -> None:
        """Later writes wait until ``job`` has been delivered (or has failed or been cancelled)."""
        self._queue.append(job)

    def release(self) -> None:
        """Apply what is ready at the head of the queue, in order (on the loop)."""
        if self._at_head:
            return  # called from an action being applied: the call applying it goes on from here
        self._at_head = True
        try:
            while self._queue:
                head = self._queue[0]
                if isinstance(head, Job):
                    if not head.done:
                        return
                    self._queue.popleft()
                    if not head.cancelled:
                        _deliver(head)
                else:
                    self._queue.popleft()
                    head()
        finally:
            self._at_head = False

    def _late_send(self, data: bytes) -> None:
        if not self.raw.send(data):
            self.refused += 1
            _log_refused.warning("a command that waited for a decode was refused: the audio command queue is full")


class LayerLink:
    """One layer's view of the ordered link: its commands name its layer, its patches go to its slot.

    Engines build commands for layer 0 (``link.commands``); this rewrites the layer byte, so an
    engine never needs to know which layer it plays.
    """

    def __init__(self, ordered: OrderedLink, layer: int) -> None:
        self.ordered = ordered
        self.layer = layer

    @property
    def idle(self) -> bool:
        """Whether nothing waits (a write goes through at once)."""
        return self.ordered.idle

    def send(self, data: bytes) -> bool:
        """An event command for this layer (see :meth:`OrderedLink.send`)."""
        return self.ordered.send(C.with_layer(data, self.layer) if self.layer else data)

    def put_patch(self, values: npt.NDArray[np.float64], arrival: float) -> None:
        """This layer's newest patch."""
        self.ordered.put_patch(values, arrival, self.layer)

    def after(self, action: Callable[[], None]) -> None:
        """See :meth:`OrderedLink.after`."""
        self.ordered.after(action)


def _deliver(job: Job) -> None:
    try:
        job.deliver(job.result)
    except Exception:  # an engine bug costs this result, never the loop
        log.exception("applying an inference result failed")


@dataclass
class InferenceStats:
    """What the worker did: batches run, jobs, time spent in model calls."""

    batches: int = 0
    jobs: int = 0
    replaced: int = 0  # jobs replaced by a newer one of their owner before they ran
    busy_s: float = 0.0
    last_ms: float = 0.0
    max_ms: float = 0.0
    failures: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)  # jobs run, per kind
    last_batch: dict[str, int] = field(default_factory=dict)  # the last cycle's jobs, per kind


class Inference:
    """Pending jobs, batching and delivery; subclasses decide on which thread the batches run."""

    def __init__(self, link: RawLink) -> None:
        self.link = OrderedLink(link)
        self.stats = InferenceStats()
        self._lock = threading.Lock()
        self._pending: dict[Hashable, Job] = {}

    @property
    def depth(self) -> int:
        """Jobs waiting to run."""
        return len(self._pending)

    def submit(self, job: Job) -> None:
        """Queue ``job``; it replaces its owner's job that has not started (keeping that one's place)."""
        with self._lock:
            old = self._pending.get(job.owner)
            if old is not None:
                self.stats.replaced += 1
                old.kind, old.inputs, old.deliver = job.kind, job.inputs, job.deliver
                if job.ordered and not old.ordered:
                    old.ordered = True
                    self.link.hold(old)
                return
            self._pending[job.owner] = job
        if job.ordered:
            self.link.hold(job)
        self._wake()

    def cancel(self, owner: Hashable) -> None:
        """Drop ``owner``'s job if it has not started (its ordered place then releases what waits)."""
        with self._lock:
            job = self._pending.pop(owner, None)
        if job is not None:
            job.cancelled = job.done = True
            self.link.release()

    def flush(self) -> None:
        """Run what is pending now, where that is the caller's job (inline); nothing for a worker."""

    def _take(self) -> list[Job]:
        with self._lock:
            jobs = list(self._pending.values())
            self._pending.clear()
        return jobs

    def _run(self, jobs: list[Job]) -> None:
        """Run ``jobs`` batched by kind (on the inference thread); results are set on the jobs."""
        t0 = time.perf_counter()
        groups: dict[Kind, list[Job]] = {}
        for job in jobs:
            groups.setdefault(job.kind, []).append(job)
        self.stats.last_batch = {}
        for kind, group in groups.items():
            try:
                results = kind.run([j.inputs for j in group])
                for j, r in zip(group, results, strict=True):
                    j.result = r
            except Exception:  # a model bug must not stop the worker; the owners try again later
                log.exception("inference batch %s failed", type(kind).__name__)
                self.stats.failures += 1
                for j in group:
                    j.cancelled = True
            name = type(kind).__name__
            self.stats.by_kind[name] = self.stats.by_kind.get(name, 0) + len(group)
            self.stats.last_batch[name] = self.stats.last_batch.get(name, 0) + len(group)
        dt = time.perf_counter() - t0
        s = self.stats
        s.batches += 1
        s.jobs += len(jobs)
        s.busy_s += dt
        s.last_ms = dt * 1000.0
        s.max_ms = max(s.max_ms, s.last_ms)

    def _land(self, jobs: list[Job]) -> None:
        """Apply results on the loop: unordered ones now, ordered ones in their place in the link's queue."""
        for job in jobs:
            job.done = True
            if not job.ordered and not job.cancelled:
                _deliver(job)
        self.link.release()

    def _wake(self) -> None:
        """Pending work exists."""

    def start(self) -> None:
        """Start running jobs."""

    def stop(self) -> None:
        """Finish the pending jobs, apply their results, stop."""


class InlineInference(Inference):
    """Runs jobs on the caller's thread: at once (``eager``), or at :meth:`flush` (once per offline block)."""

    def __init__(self, link: RawLink, *, eager: bool = True) -> None:
        super().__init__(link)
        self.eager = eager

    def _wake(self) -> None:
        if self.eager:
            self.flush()

    def flush(self) -> None:
        """Run every pending job in one batch per kind and apply the results."""
        while jobs := self._take():
            self._run(jobs)
            self._land(jobs)

    def stop(self) -> None:
        """Apply what is pending."""
        self.flush()


class WorkerInference(Inference):
    """One thread owns the torch device and runs the jobs; results go back through ``loop``.

    Batches start at least ``min_interval`` apart: a flood of map moves costs a bounded number of
    decodes (a point's newest value waits at most that long), and the thread's share of the
    process's lock (the GIL) stays small. A submission wakes the thread at the end of the loop's
    current callback, so the jobs one callback submits (every engine's tick) run as one batch.
    """

    def __init__(self, link: RawLink, loop: asyncio.AbstractEventLoop, *, min_interval: float = 0.0,
                 threads: int | None = None) -> None:
        super().__init__(link)
        self.loop = loop
        self.min_interval = float(min_interval)
        self.threads = threads
        self._cv = threading.Condition(self._lock)
        self._ready = False  # the loop said: run what is pending
        self._wake_armed = False
        self._stopping = False
        self._landed: deque[list[Job]] = deque()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._main, name="timbrespace-inference", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Let the thread finish what is pending, then apply the results here (call on the loop)."""
        with self._cv:
            self._stopping = True
            self._ready = True
            self._cv.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._apply_landed()

    async def settled(self) -> None:
        """Return once nothing is pending, running or waiting to be applied (polls the loop)."""
        while self._pending or self._landed or not self.link.idle:
            await asyncio.sleep(0.001)

    def _wake(self) -> None:
        # On the loop: wake the thread once, after this callback has submitted everything it will.
        if not self._wake_armed:
            self._wake_armed = True
            self.loop.call_soon(self._go)

    def _go(self) -> None:
        self._wake_armed = False
        with self._cv:
            self._ready = True
            self._cv.notify()

    def _main(self) -> None:
        if self.threads is not None:
            import torch

            torch.set_num_threads(self.threads)
        last = -1e9
        while True:
            with self._cv:
                while not (self._ready and self._pending) and not self._stopping:
                    self._cv.wait()
                if not self._pending:
                    return  # stopping, nothing left
                wait = last + self.min_interval - time.monotonic()
                if wait > 0 and not self._stopping:
                    self._cv.wait(wait)  # what arrives meanwhile joins this batch
                jobs = list(self._pending.values())
                self._pending.clear()
                self._ready = False
            if not jobs:
                continue  # cancelled meanwhile
            last = time.monotonic()
            self._run(jobs)
            with self._cv:
                self._landed.append(jobs)
                first = len(self._landed) == 1
            if first and not self.loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: stop() applies them
                    self.loop.call_soon_threadsafe(self._apply_landed)

    def _apply_landed(self) -> None:
        while True:
            with self._cv:
                if not self._landed:
                    return
                jobs = self._landed.popleft()
            self._land(jobs)
