"""How an OSC address is declared: its arguments' kinds and ranges, and the parsing every message
of the public API goes through (``Address.parse``). The table itself is ``protocol/addresses.py``.

Argument kinds and what each accepts on the wire (clients differ: Pure Data sends every number
as a float, SuperCollider sends integer literals as ints):

``int``    an OSC int, or a float with an integral value (``69.0``)
``float``  an OSC int or float; never NaN or infinite
``str``    an OSC string
``ref``    an index (as ``int``) or a name (``str``): a preset (``bank/name`` when ambiguous) or an
           instrument, depending on the engine
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .replies import clip

ArgKind = Literal["int", "float", "str", "ref"]
Value = int | float | str
#: Whose state an address touches: the server's (queries), the sender's own (its identity, its
#: subscription, where its replies go) or the layer's it plays on (the sound everyone hears).
Scope = Literal["server", "client", "layer"]

_FMAX = 1.7976931348623157e308
#: The range of an OSC int32: what an integer echoed in a reply (``/synced id``) must fit.
INT32 = (-(2**31), 2**31 - 1)
#: Characters of a client's value a /fail reason repeats (a 300-digit integer is not repeated).
SHOW_CHARS = 48

#: OSC type tags a declared kind may be sent as (for docs and OSCQuery TYPE strings).
WIRE_TAGS: dict[ArgKind, str] = {"int": "i", "float": "f", "str": "s", "ref": "i|s"}


class InvalidMessage(ValueError):
    """A message that does not match its declaration; the text is the ``/fail`` reason."""


@dataclass(frozen=True)
class Arg:
    """One declared argument."""

    name: str
    kind: ArgKind
    doc: str
    lo: float | None = None
    hi: float | None = None
    #: Extra check on the converted value (e.g. a parameter's own range); raises InvalidMessage.
    check: Callable[[Value, tuple[Value, ...]], None] | None = field(default=None, compare=False)
    #: The value when the argument is left out; None: it must be sent. Only trailing arguments.
    default: Value | None = None
    #: Values only an admin may send (``/panic all``); see ``Address.admin``.
    admin_values: tuple[Value, ...] = ()
    #: The values it takes when they are a fixed list (OSCQuery's RANGE ``VALS``); ``check`` enforces it.
    choices: tuple[str, ...] = ()
    _lo: float = field(init=False, repr=False, compare=False)
    _hi: float = field(init=False, repr=False, compare=False)
    _fast: type | None = field(init=False, repr=False, compare=False)

    def range_text(self) -> str:
        """``[lo, hi]`` or an empty string when unbounded."""
        if self.lo is None and self.hi is None:
            return ""
        lo = "-inf" if self.lo is None else num_text(self.lo)
        hi = "inf" if self.hi is None else num_text(self.hi)
        return f"[{lo}, {hi}]"

    def __post_init__(self) -> None:
        # Bounds for the fast path below: finite stand-ins, so inf and NaN always miss it.
        object.__setattr__(self, "_lo", -_FMAX if self.lo is None else self.lo)
        object.__setattr__(self, "_hi", _FMAX if self.hi is None else self.hi)
        object.__setattr__(self, "_fast", {"float": float, "int": int}.get(self.kind))

    def convert(self, value: object, address: str) -> Value:
        """The typed value for a raw OSC argument, or InvalidMessage saying what was expected."""
        # Fast path: the wire type already is the declared one and in range (the usual case, and
        # the one a flood of /latent takes). Everything else goes the checked way below.
        if self._fast is not None and type(value) is self._fast:
            assert isinstance(value, int | float)
            if self._lo <= value <= self._hi:
                return value
        where = f"{address} argument '{self.name}'"
        if self.kind == "str":
            if not isinstance(value, str):
                raise InvalidMessage(f"{where}: expected a string, got {_describe(value)}")
            return value
        if self.kind == "ref":
            if isinstance(value, str):
                if not value:
                    raise InvalidMessage(f"{where}: expected an index or a name, got an empty string")
                return value
            return self._number(value, where, integral=True, what="an index or a name")
        return self._number(value, where, integral=self.kind == "int", what=f"an {self.kind}"
                            if self.kind == "int" else "a float")

    def _number(self, value: object, where: str, *, integral: bool, what: str) -> Value:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidMessage(f"{where}: expected {what}, got {_describe(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidMessage(f"{where}: expected a finite number, got {show(value)}")
        out: Value
        if integral:
            if isinstance(value, float) and not value.is_integer():
                raise InvalidMessage(f"{where}: expected an integer, got {show(value)}")
            out = int(value)
        else:
            out = float(value)
        if (self.lo is not None and out < self.lo) or (self.hi is not None and out > self.hi):
            raise InvalidMessage(f"{where}: {show(out)} is out of range {self.range_text()}")
        return out


@dataclass(frozen=True)
class Address:
    """One OSC address of the public API."""

    path: str
    args: tuple[Arg, ...]
    doc: str
    group: str
    reply: str | None = None
    reply_doc: str = ""
    #: The one engine that serves it, when only one does (a server without that engine
    #: answers it with /fail naming the engine); None: the server or every engine.
    engine: str | None = None
    scope: Scope = "layer"
    #: Only from an admin (loopback or ``sessions.admin``); per value: ``Arg.admin_values``.
    admin: bool = False
    #: Whether what it sets is fed back to the layer's subscribers (``/notify``), under the key
    #: made of its address and its first ``feedback_key`` arguments (``/param name``, ``/z index``).
    feedback: bool = False
    feedback_key: int = 0

    def parse(self, raw: Sequence[object]) -> tuple[Value, ...]:
        """Convert and validate raw OSC arguments; InvalidMessage names what was wrong."""
        if not raw and not self.args:  # /status, /version, ...: the commonest polls
            return ()
        if len(raw) != len(self.args):
            need = sum(1 for a in self.args if a.default is None)
            if not need <= len(raw) <= len(self.args):
                want = " ".join(a.name if a.default is None else f"[{a.name}]" for a in self.args) or "no arguments"
                count = str(len(self.args)) if need == len(self.args) else f"{need} to {len(self.args)}"
                raise InvalidMessage(f"{self.path}: expected {count} argument(s) ({want}), got {len(raw)}")
            raw = [*raw, *(a.default for a in self.args[len(raw):])]
        values = tuple(a.convert(v, self.path) for a, v in zip(self.args, raw))
        for a, v in zip(self.args, values):
            if a.check is not None:
                a.check(v, values)
        return values

    def signature(self) -> str:
        """``/path name:kind ...`` for docs and error messages (optional arguments in brackets)."""
        return " ".join([self.path, *(f"{a.name}:{a.kind}" if a.default is None else f"[{a.name}:{a.kind}]"
                                      for a in self.args)])

    def needs_admin(self, values: tuple[Value, ...]) -> bool:
        """Whether these values may come only from an admin."""
        return self.admin or any(v in a.admin_values for a, v in zip(self.args, values) if a.admin_values)


def num_text(x: float) -> str:
    """A bound as docs and reasons print it: ``1`` rather than ``1.0``."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def show(value: object) -> str:
    """``value`` as a reason repeats it: its repr for a string, clipped to SHOW_CHARS characters."""
    text = repr(value) if isinstance(value, str) else str(value)
    if len(text) <= SHOW_CHARS:
        return text
    return clip(text, SHOW_CHARS) + f" ({len(text)} characters)"


def _describe(value: object) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, bytes | bytearray):
        return f"a blob of {len(value)} bytes"
    return f"{type(value).__name__} {show(value)}"
