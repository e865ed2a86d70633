"""amSynth's DSSI plugin driven through ctypes, block by block; the library loads only in the worker.

Debian's ``amsynth`` package installs ``/usr/lib/dssi/amsynth_dssi.so``.  The plugin
is a LADSPA descriptor (ports 0/1 the left/right outputs, 2..42 the 41 parameters in
bank order and units) plus DSSI's ``run_synth``, which takes ALSA sequencer events
(note on = 6, note off = 7) with sample offsets inside the block.  Every render
instantiates a fresh plugin, so it sounds as amSynth does when a dataset is rendered
(first-note fades and all).  The plugin writes a config folder under ``$HOME``.

``timbrespace.fidelity.reference`` runs this module in a child process of its own:
the plugin's heap is never shared with pyo's.
"""

from __future__ import annotations

import ctypes
import functools
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from timbrespace.patch import params

Note = tuple[float, float | None, int, int]  # (t_on, t_off or None, MIDI pitch, velocity)
_NOTE_ON, _NOTE_OFF = 6, 7  # SND_SEQ_EVENT_NOTEON / NOTEOFF


class ReferenceUnavailable(RuntimeError):
    """amSynth's DSSI plugin cannot be loaded."""


class _Seq(ctypes.Structure):  # ALSA's snd_seq_event_t with a note payload (28 bytes)
    _fields_ = [("type", ctypes.c_ubyte), ("flags", ctypes.c_ubyte), ("tag", ctypes.c_ubyte),
                ("queue", ctypes.c_ubyte), ("tick", ctypes.c_uint), ("nsec", ctypes.c_uint),
                ("source", ctypes.c_ushort), ("dest", ctypes.c_ushort), ("channel", ctypes.c_ubyte),
                ("note", ctypes.c_ubyte), ("velocity", ctypes.c_ubyte), ("off_velocity", ctypes.c_ubyte),
                ("duration", ctypes.c_uint), ("pad", ctypes.c_uint)]


_Handle = ctypes.c_void_p
_FloatP = ctypes.POINTER(ctypes.c_float)


class _Ladspa(ctypes.Structure):  # LADSPA_Descriptor; only the members we call are typed
    _fields_ = [("id", ctypes.c_ulong), ("label", ctypes.c_char_p), ("props", ctypes.c_int),
                ("name", ctypes.c_char_p), ("maker", ctypes.c_char_p), ("copyright", ctypes.c_char_p),
                ("ports", ctypes.c_ulong), ("descs", ctypes.c_void_p), ("names", ctypes.c_void_p),
                ("hints", ctypes.c_void_p), ("data", ctypes.c_void_p),
                ("instantiate", ctypes.CFUNCTYPE(_Handle, ctypes.c_void_p, ctypes.c_ulong)),
                ("connect", ctypes.CFUNCTYPE(None, _Handle, ctypes.c_ulong, _FloatP)),
                ("activate", ctypes.c_void_p), ("run", ctypes.c_void_p), ("run_adding", ctypes.c_void_p),
                ("gain", ctypes.c_void_p), ("deactivate", ctypes.c_void_p),
                ("cleanup", ctypes.CFUNCTYPE(None, _Handle))]


class _Dssi(ctypes.Structure):  # DSSI_Descriptor
    _fields_ = [("api", ctypes.c_int), ("ladspa", ctypes.POINTER(_Ladspa)), ("configure", ctypes.c_void_p),
                ("get_program", ctypes.c_void_p), ("select_program", ctypes.c_void_p),
                ("midi", ctypes.c_void_p),
                ("run_synth", ctypes.CFUNCTYPE(None, _Handle, ctypes.c_ulong, ctypes.POINTER(_Seq),
                                               ctypes.c_ulong))]


@functools.cache
def _descriptor(plugin: str) -> Any:
    if not Path(plugin).is_file():
        raise ReferenceUnavailable(
            f"amSynth's DSSI plugin {plugin} is not installed (Debian/Ubuntu: apt-get install amsynth)"
        )
    try:
        lib = ctypes.CDLL(plugin)
    except OSError as e:
        raise ReferenceUnavailable(f"cannot load amSynth's DSSI plugin {plugin}: {e}") from None
    lib.dssi_descriptor.restype = ctypes.POINTER(_Dssi)
    d = lib.dssi_descriptor(0)
    if not d:
        raise ReferenceUnavailable(f"{plugin} has no DSSI descriptor 0")
    return lib, d.contents  # the library stays referenced as long as the descriptor


def events(notes: Sequence[Note], sample_rate: int) -> list[tuple[int, int, int, int]]:
    """(sample, kind, pitch, velocity), note-offs before note-ons at the same sample."""
    out = []
    for t_on, t_off, pitch, velocity in notes:
        out.append((round(t_on * sample_rate), _NOTE_ON, int(pitch), int(velocity)))
        if t_off is not None:
            out.append((round(t_off * sample_rate), _NOTE_OFF, int(pitch), 0))
    return sorted(out, key=lambda e: (e[0], e[1] == _NOTE_ON))


def check_values(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The 41 values as float64; ValueError naming the problem otherwise."""
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (params.N_PARAMS,):
        raise ValueError(f"a patch has {params.N_PARAMS} values, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError(f"patch values must be finite; not at {np.flatnonzero(~np.isfinite(v)).tolist()}")
    return v


def render(
    values: npt.ArrayLike,
    notes: Sequence[Note],
    duration: float,
    sample_rate: int,
    block: int,
    plugin: Path,
    timed_from: float | None = None,
) -> tuple[npt.NDArray[np.float32], float, float]:
    """Render ``notes`` on a fresh amSynth here: ``((n, 2) float32, cpu s, wall s)``.

    The times cover the blocks from ``timed_from`` seconds on (0, 0 when None).
    """
    v = check_values(values)
    if os.environ.get("HOME") is None:
        raise ReferenceUnavailable("amSynth's plugin needs $HOME (it writes its config folder there)")
    _, d = _descriptor(str(plugin))
    lad = d.ladspa.contents
    h = lad.instantiate(ctypes.cast(d.ladspa, ctypes.c_void_p), sample_rate)
    if not h:
        raise ReferenceUnavailable(f"amSynth's DSSI plugin would not instantiate at {sample_rate} Hz")
    outs = [(ctypes.c_float * block)() for _ in range(2)]
    ports = (ctypes.c_float * params.N_PARAMS)(*v.tolist())
    for k, buf in enumerate(outs):
        lad.connect(h, k, ctypes.cast(buf, _FloatP))
    for k in range(params.N_PARAMS):
        lad.connect(h, 2 + k, ctypes.cast(ctypes.byref(ports, 4 * k), _FloatP))
    evs = events(notes, sample_rate)
    n_blocks = round(duration * sample_rate) // block
    first_timed = n_blocks if timed_from is None else round(timed_from * sample_rate) // block
    out = np.zeros((n_blocks * block, 2), np.float32)
    views = [np.frombuffer(memoryview(o), np.float32) for o in outs]
    empty = (_Seq * 1)()
    cpu0 = wall0 = 0.0
    k = 0
    try:
        for b in range(n_blocks):
            if b == first_timed:
                cpu0, wall0 = time.process_time(), time.perf_counter()
            start = k
            while k < len(evs) and evs[k][0] < (b + 1) * block:
                k += 1
            now = evs[start:k]
            seq = (_Seq * len(now))() if now else empty
            for i, (t, kind, p, vel) in enumerate(now):
                seq[i].type, seq[i].tick, seq[i].note, seq[i].velocity = kind, max(0, t - b * block), p, vel
            d.run_synth(h, block, seq, len(now))
            out[b * block : (b + 1) * block, 0] = views[0]
            out[b * block : (b + 1) * block, 1] = views[1]
        cpu = time.process_time() - cpu0 if first_timed < n_blocks else 0.0
        wall = time.perf_counter() - wall0 if first_timed < n_blocks else 0.0
    finally:
        lad.cleanup(h)
    return out, cpu, wall
