"""docs/protocol.md, generated from the address declaration (``python -m timbrespace.protocol.docs``)."""

from __future__ import annotations

from pathlib import Path

import timbrespace
from timbrespace.fsutil import write_generated
from timbrespace.patch import params
from timbrespace.protocol import addresses

_GROUPS = {
    "server": "Server",
    "notes": "Notes",
    "map": "The 2-D map and interpolation",
    "patch": "Patches and parameters",
    "session": "Sessions: many players on one server",
}
_SCOPES = {"server": "the server as a whole, not one layer", "client": "the sender's own state",
           "layer": "the layer the sender plays on"}


def render() -> str:
    """The whole protocol reference as Markdown."""
    out = [
        "# OSC protocol",
        "",
        f"Protocol version {timbrespace.PROTOCOL_VERSION}. Generated from "
        "`server/timbrespace/protocol/addresses.py` by `python -m timbrespace.protocol.docs`; "
        "a test fails when this file and the declaration differ.",
        "",
        "Transport: OSC 1.0/1.1 over UDP (datagrams up to 64 KiB) and TCP on the same port "
        "(default 57130; SLIP framing, or a 4-byte length prefix by config). Bundles are honoured; "
        "a bundle time-tagged in the future is applied at its time. Replies go to the sender "
        "(same UDP address and port, or the same TCP connection).",
        "",
        "Argument kinds: `int` takes an OSC int or an integral float (Pure Data sends floats); "
        "`float` takes an int or a float, never NaN or infinity; `preset` takes an index (int) "
        "or a name (string, `bank/name` where the factory banks repeat a name).",
        "",
        "Every rejected message (unknown address, wrong arity or types, value out of range, NaN "
        "or inf, undecodable packet, a request that cannot be carried out) is answered with "
        "`/fail address reason` (address empty for an undecodable packet), logged and counted.",
        "",
    ]
    for group, addrs in addresses.groups():
        out += [f"## {_GROUPS.get(group, group)}", ""]
        for a in addrs:
            out += [f"### `{a.path}`", "", a.doc, ""]
            if a.args:
                out += ["| argument | kind | range | meaning |", "| --- | --- | --- | --- |"]
                for arg in a.args:
                    out.append(f"| `{arg.name}` | {arg.kind} | {arg.range_text() or '-'} | {arg.doc} |")
                out.append("")
            if a.reply:
                out += [f"Reply: `{a.reply}` {a.reply_doc}", ""]
            facts = [f"Touches {_SCOPES[a.scope]}"]
            if a.feedback:
                facts.append("fed back to the layer's subscribers (`/notify`)"
                             + (f", one value per {', '.join(x.name for x in a.args[:a.feedback_key])}"
                                if a.feedback_key else ""))
            if a.admin:
                facts.append("admin only")
            admin_values = [f"`{v}`" for x in a.args for v in x.admin_values]
            if admin_values:
                facts.append(f"{', '.join(admin_values)} admin only (loopback or `sessions.admin`)")
            out += ["; ".join(facts) + ".", ""]
    out += ["## Replies not tied to one request", ""]
    for path, doc in {**addresses.SERVER_REPLIES, **addresses.FEEDBACK_EVENTS}.items():
        out.append(f"- `{path}`: {doc}")
    out += ["", "## amSynth parameters (`/param`)", "",
            "Values in the units of amSynth's bank files.", "",
            "| name | min | max | default | values |", "| --- | --- | --- | --- | --- |"]
    for p in params.PARAMS:
        values = ", ".join(f"{i} {c}" for i, c in enumerate(p.choices)) or p.doc
        out.append(f"| `{p.name}` | {p.minimum:g} | {p.maximum:g} | {p.default:g} | {values} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write docs/protocol.md (or the path given)."""
    return write_generated(argv, prog="python -m timbrespace.protocol.docs",
                           what="the protocol reference generated from the address declaration",
                           default=Path(__file__).resolve().parents[3] / "docs/protocol.md", render=render)


if __name__ == "__main__":
    raise SystemExit(main())
