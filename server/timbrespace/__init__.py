"""Timbrespace: a headless OSC network sound server for playing neural timbre spaces live."""

__version__ = "0.1.0"
#: Version of the OSC address space (the ``api`` TXT key, ``/version.reply``).
PROTOCOL_VERSION = "1.0"
