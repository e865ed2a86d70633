"""What the layouts share: the controls they offer and the declared ranges they read."""

from __future__ import annotations

from pathlib import Path

from timbrespace.config import Config, TimbreConfig
from timbrespace.data.soundfont import INSTRUMENTS as _SOUNDFONT_INSTRUMENTS
from timbrespace.protocol.addresses import BY_PATH
from timbrespace.protocol.declaration import Address, Arg

#: Presets the layouts offer as buttons (source, target, load); names in the factory banks.
PRESETS: tuple[str, ...] = (
    "BriansBank01/basic11",
    "BriansBank02/WowPad",
    "BriansBank01/Pianola",
    "BriansBank02/RudeBass",
)
#: Instruments the layouts offer for /source and /target (the shipped timbre model's, by name).
INSTRUMENTS: tuple[str, ...] = tuple(s.name for s in _SOUNDFONT_INSTRUMENTS)
#: Corner sets for /corners a b c d: the config's default first, then the other eight instruments.
_DEFAULT_CORNERS = tuple(str(c) for c in TimbreConfig().corners)
CORNER_SETS: tuple[tuple[str, ...], ...] = (
    _DEFAULT_CORNERS,
    ("violin", "oboe", "clarinet", "french_horn"),
    ("bassoon", "saxophone", "english_horn", "trombone"),
)
#: How many /z dimensions get a control (the shipped model's timbre code has 16).
Z_DIMS = 8
#: Layers the layouts offer a button for (``/layer N``): those of a server on the default config.
LAYERS = min(len(Config().layers), 4)
#: The keyboard: one octave from middle C, at this velocity.
KEYS: tuple[int, ...] = tuple(range(60, 73))
VELOCITY = 100
#: Seconds between the /notify 1 a layout sends while it follows the server: well inside the
#: UDP subscription's lifetime (UDP_SUBSCRIPTION_S), so one lost renewal ends nothing.
RENEW_S = 25.0
#: The name a layout says /hello with (edit it in the client: the same name gets the same id back).
PLAYER = {"touchosc": "TouchOSC", "max": "Max", "puredata": "Pd"}
#: Default server address the layouts connect to (change it in the client).
HOST = "127.0.0.1"
PORT = 57130

ROOT = Path(__file__).resolve().parents[3]


def address(path: str) -> Address:
    """The declaration of ``path`` (KeyError for an address that is not part of the API)."""
    return BY_PATH[path]


def arg(path: str, name: str) -> Arg:
    """The declared argument ``name`` of ``path``."""
    for a in address(path).args:
        if a.name == name:
            return a
    raise KeyError(f"{path} has no argument {name!r}")


def bounds(path: str, name: str) -> tuple[float, float]:
    """``(lo, hi)`` of a bounded argument; ValueError when the declaration leaves it open."""
    a = arg(path, name)
    if a.lo is None or a.hi is None:
        raise ValueError(f"{path} {name} is unbounded")
    return a.lo, a.hi
