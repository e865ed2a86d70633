"""The contract between the control process and the audio process.

Both processes import this package; it imports neither pyo nor torch (tests/test_layering.py
checks), so each side can change without reaching into the other: event commands
(:mod:`.commands`, and the control side's release queue :mod:`.outbox`), the newest patch
(:mod:`.mailbox`), the audio side's counters (:mod:`.stats`), the timbre engine's per-voice frames
(:mod:`.frames`, built by :mod:`.wavetable`) and the shared memory under them (:mod:`.shm`).
"""
