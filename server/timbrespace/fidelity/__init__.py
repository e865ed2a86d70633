"""Fidelity: the project's amSynth voice measured against amSynth itself (its DSSI plugin)."""
