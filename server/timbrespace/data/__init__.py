"""Training data for the timbre engine: isolated labelled notes and their manifest.

``soundfont`` renders them from a General MIDI SoundFont, ``folder`` imports a user's own WAVs;
both write the format of ``manifest``.
"""
