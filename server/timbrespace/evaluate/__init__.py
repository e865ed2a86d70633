"""Measurements of the timbre engine against the paper's targets (``timbrespace eval timbre``)."""
