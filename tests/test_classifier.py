"""The evaluation's instrument CNN (``evaluate/classifier.py``): how its training notes are moved in time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from timbrespace.evaluate.classifier import _jittered, train_classifier


def test_jittered_notes_keep_their_frames_in_order_with_silence_before_or_their_start_cut() -> None:
    t, mels = 20, 3
    frames = torch.arange(1.0, t + 1).repeat(64, 1)  # frame i holds the value i + 1
    x = frames.unsqueeze(2).expand(-1, -1, mels).contiguous()
    out = _jittered(x, 5, -9.0, torch.Generator().manual_seed(0))
    lags = set()
    for row in out[:, :, 0]:
        quiet = int((row == -9.0).sum())
        sounding = row[row != -9.0]
        lag = quiet if quiet else 1 - int(sounding[0])
        lags.add(lag)
        assert -5 <= lag <= 5
        assert torch.equal(row[:quiet], torch.full((quiet,), -9.0))  # silence only before the note
        expect = torch.arange(1.0, t + 1)[max(-lag, 0) :][: t - max(lag, 0)]
        assert torch.equal(sounding[: len(expect)], expect)  # the note's frames, in order, none skipped
        assert torch.all(sounding[len(expect) :] == t)  # a note started early holds its last frame
    assert min(lags) < 0 < max(lags)  # both ways
    assert torch.equal(out, out[:, :, :1].expand(-1, -1, mels))  # every band moved alike


@pytest.mark.parametrize("frames", [-1, 129])
def test_a_jitter_outside_the_notes_is_refused(frames: int) -> None:
    x = np.zeros((4, 129, 8), np.float32)
    with pytest.raises(ValueError, match="jitter_frames: expected 0 to 128"):
        train_classifier(x, [0, 1, 0, 1], 2, epochs=1, jitter_frames=frames)
