"""The OSCQuery namespace: the address declaration as the tree of JSON nodes the proposal describes.

Everything here is derived from :data:`timbrespace.protocol.addresses.ADDRESSES`; nothing spells an
address again. The tree is built once (its structure, types, ranges, access and descriptions never
change while the server runs) and rendered per request with each node's live ``VALUE``.

Choices made where the proposal leaves room:

- ``TYPE``: ``int`` is ``i``, ``float`` ``f``, ``str`` ``s``, and ``ref`` (an index or a name) is
  ``s``: the server reports a preset or an instrument by name, so a value read back can be sent
  again unchanged; an index is accepted too (the ``DESCRIPTION`` says so).
- ``ACCESS``: 3 (read and write) for an address whose current value the layer reports as one message
  of that address (``/latent``, ``/engine``...), 2 (write only) for the other addresses with
  arguments (notes, ``/param name value``: several values under one address), 0 for those with
  none (``/status``: they ask, and the answer comes back over OSC, see ``DESCRIPTION``).
- Layers: the top level is layer 0's (where every client starts); ``/layer/N/...`` holds each
  layer's own addresses with that layer's values, as the router serves ``/layer/N/ADDRESS``.
- A node can be a method and a container at once (``/status`` and ``/status/feedback``, ``/layer``
  and ``/layer/0``): it has both ``TYPE`` and ``CONTENTS``.
- Addresses of an engine the server does not run (the timbre engine without its model) are left
  out: a client builds no control that only ever answers ``/fail``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from timbrespace.protocol.addresses import ADDRESSES
from timbrespace.protocol.declaration import Address, Arg

__all__ = ["ATTRIBUTES", "Namespace", "Node", "access", "type_tags"]

#: The node attributes this server serves (``GET /path?ATTRIBUTE``); any other is a 400.
ATTRIBUTES = ("FULL_PATH", "CONTENTS", "TYPE", "RANGE", "ACCESS", "VALUE", "DESCRIPTION")
#: OSC type tag per declared kind (see the module doc for ``ref``).
TAGS = {"int": "i", "float": "f", "str": "s", "ref": "s"}

#: A layer's state, keyed as the feedback keys it: ``(address, *key args) -> (address, args)``.
LayerState = Mapping[tuple[Any, ...], tuple[str, tuple[Any, ...]]]


def type_tags(decl: Address) -> str:
    """The OSC type tag string of ``decl``'s arguments (optional ones included)."""
    return "".join(TAGS[a.kind] for a in decl.args)


def readable(decl: Address) -> bool:
    """Whether the layer reports ``decl``'s current value as one message of its own address."""
    return decl.feedback and decl.feedback_key == 0 and decl.reply is None and decl.scope == "layer"


def access(decl: Address) -> int:
    """The proposal's ACCESS mask: 0 no value, 2 write only, 3 read and write."""
    if readable(decl):
        return 3
    return 2 if decl.args else 0


def _range(arg: Arg) -> dict[str, Any] | None:
    if arg.choices:
        return {"VALS": list(arg.choices)}
    if arg.lo is None and arg.hi is None:
        return None
    out: dict[str, Any] = {}
    cast = int if arg.kind == "int" else float
    if arg.lo is not None:
        out["MIN"] = cast(arg.lo)
    if arg.hi is not None:
        out["MAX"] = cast(arg.hi)
    return out


def _description(decl: Address) -> str:
    parts = [decl.doc]
    if decl.args:
        parts.append("Arguments: " + "; ".join(
            f"{a.name} ({a.kind}{', optional' if a.default is not None else ''}): {a.doc}" for a in decl.args) + ".")
    if decl.reply:
        parts.append(f"Answered over OSC with {decl.reply}: {decl.reply_doc}.")
    if decl.engine:
        parts.append(f"Served by the {decl.engine} engine.")
    return " ".join(parts)


@dataclass
class Node:
    """One OSC container or method: its fixed attributes, its children, where its value comes from."""

    full_path: str
    attributes: dict[str, Any] = field(default_factory=dict)
    contents: dict[str, Node] = field(default_factory=dict)
    #: (layer, address) whose live value is this node's VALUE; None: it has none.
    value_of: tuple[int, str] | None = None

    def child(self, name: str) -> Node:
        """The child ``name``, made as a bare container when missing."""
        node = self.contents.get(name)
        if node is None:
            node = self.contents[name] = Node(self.full_path.rstrip("/") + "/" + name,
                                              {"DESCRIPTION": "container", "ACCESS": 0})
        return node


def _method(node: Node, decl: Address, layer: int) -> None:
    """Give ``node`` the attributes of ``decl`` on ``layer`` (keeping any children it has)."""
    attrs: dict[str, Any] = {"DESCRIPTION": _description(decl), "ACCESS": access(decl)}
    if decl.args:
        attrs["TYPE"] = type_tags(decl)
        ranges = [_range(a) for a in decl.args]
        if any(r is not None for r in ranges):
            attrs["RANGE"] = ranges
    node.attributes = attrs
    node.value_of = (layer, decl.path) if readable(decl) else None


def _place(root: Node, path: str) -> Node:
    node = root
    for name in path.strip("/").split("/"):
        node = node.child(name)
    return node


class Namespace:
    """The tree for a server running ``engines`` on ``layers`` layers; ``state_of(layer)`` gives a
    layer's live state (``Layer.state``) when a request is rendered."""

    def __init__(self, engines: Iterable[str], layers: int,
                 state_of: Callable[[int], LayerState], *, description: str = "") -> None:
        self.state_of = state_of
        running = set(engines)
        self.addresses = tuple(a for a in ADDRESSES if a.engine is None or a.engine in running)
        self.root = Node("/", {"DESCRIPTION": description or "root", "ACCESS": 0})
        for decl in self.addresses:
            _method(_place(self.root, decl.path), decl, 0)
        # /layer is an address of its own (/layer INDEX) and the container of /layer/N/ADDRESS.
        layer_node = _place(self.root, "/layer")
        for i in range(layers):
            lay = layer_node.child(str(i))
            lay.attributes["DESCRIPTION"] = f"layer {i}: its own addresses, whichever layer the sender plays"
            for decl in self.addresses:
                if decl.scope == "layer":
                    _method(_place(lay, decl.path), decl, i)
        self._index: dict[str, Node] = {}
        self._walk(self.root)

    def _walk(self, node: Node) -> None:
        self._index[node.full_path] = node
        for c in node.contents.values():
            self._walk(c)

    def __len__(self) -> int:
        return len(self._index)

    def find(self, path: str) -> Node | None:
        """The node at ``path`` (a trailing slash is ignored); None when there is none."""
        if len(path) > 1:
            path = path.rstrip("/") or "/"
        return self._index.get(path)

    def paths(self) -> list[str]:
        """Every node's full path."""
        return list(self._index)

    def render(self, node: Node) -> dict[str, Any]:
        """``node`` and everything under it as JSON-ready data, with live values."""
        states: dict[int, LayerState] = {}
        return self._render(node, states)

    def value(self, node: Node, states: dict[int, LayerState] | None = None) -> list[Any] | None:
        """``node``'s live VALUE, or None when it has none (a write-only node, a value not set)."""
        if node.value_of is None:
            return None
        layer, address = node.value_of
        cache = states if states is not None else {}
        state = cache.get(layer)
        if state is None:
            state = cache[layer] = self.state_of(layer)
        message = state.get((address,))
        return None if message is None else list(message[1])

    def attribute(self, node: Node, name: str) -> Any:
        """One attribute of ``node`` (None when it has none); ``name`` must be in ATTRIBUTES."""
        if name == "FULL_PATH":
            return node.full_path
        if name == "VALUE":
            return self.value(node)
        if name == "CONTENTS":
            return self.render(node).get("CONTENTS")
        return node.attributes.get(name)

    def _render(self, node: Node, states: dict[int, LayerState]) -> dict[str, Any]:
        out: dict[str, Any] = {"FULL_PATH": node.full_path, **node.attributes}
        value = self.value(node, states)
        if value is not None:
            out["VALUE"] = value
        if node.contents:
            out["CONTENTS"] = {name: self._render(c, states) for name, c in node.contents.items()}
        return out
