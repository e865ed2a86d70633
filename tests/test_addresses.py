"""The address declaration: validation of each bad-input class, and docs derived from it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from timbrespace.protocol import addresses, docs
from timbrespace.protocol.declaration import InvalidMessage


def parse(path: str, *args: object) -> tuple[object, ...]:
    return addresses.lookup(path).parse(args)


def test_good_messages_convert_to_declared_types() -> None:
    assert parse("/note", 69, 100) == (69, 100)
    assert parse("/note", 69.0, 100.0) == (69, 100)  # Pure Data sends floats
    assert parse("/latent", 0, 1) == (0.0, 1.0)
    assert parse("/patch/load", 3) == (3,)
    assert parse("/patch/load", "BriansBank01/basic11") == ("BriansBank01/basic11",)
    assert parse("/param", "filter_cutoff", -0.5) == ("filter_cutoff", -0.5)


@pytest.mark.parametrize(
    ("path", "args", "needle"),
    [
        ("/note", (69,), "expected 2 argument(s) (pitch velocity), got 1"),
        ("/note", (69, 100, 1), "got 3"),
        ("/note", ("a", 100), "expected an int, got str 'a'"),
        ("/note", (69.5, 100), "expected an integer, got 69.5"),
        ("/note", (128, 100), "128 is out of range [0, 127]"),
        ("/note", (60, -1), "-1 is out of range [0, 127]"),
        ("/latent", (math.nan, 0.5), "expected a finite number, got nan"),
        ("/latent", (0.5, math.inf), "expected a finite number, got inf"),
        ("/latent", (1.5, 0.5), "1.5 is out of range [0, 1]"),
        ("/alpha", (b"xx",), "got a blob of 2 bytes"),
        ("/alpha", (True,), "got a boolean"),
        ("/alpha", (None,), "got nil"),
        ("/patch/save", (3,), "expected a string, got int 3"),
        ("/patch/load", ("",), "empty string"),
        ("/param", ("nope", 0.5), "unknown amSynth parameter 'nope'"),
        ("/param", ("filter_cutoff", 2.0), "/param filter_cutoff: 2 is out of range [-0.5, 1.5]"),
    ],
)
def test_each_bad_input_names_what_was_wrong(path: str, args: tuple[object, ...], needle: str) -> None:
    with pytest.raises(InvalidMessage) as e:
        parse(path, *args)
    assert needle in str(e.value)
    assert path in str(e.value)


def test_unknown_address() -> None:
    with pytest.raises(InvalidMessage, match="unknown address '/nope'"):
        addresses.lookup("/nope")


def test_every_address_is_documented_once() -> None:
    paths = [a.path for a in addresses.ADDRESSES]
    assert len(paths) == len(set(paths))
    for a in addresses.ADDRESSES:
        assert a.doc and a.path.startswith("/")
        assert all(arg.doc for arg in a.args)


def test_protocol_docs_entry_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert docs.main([str(tmp_path / "protocol.md")]) == 0
    assert (tmp_path / "protocol.md").read_text(encoding="utf-8") == docs.render()
    # An option it does not know is refused, not taken for a file name to write.
    with pytest.raises(SystemExit) as exit_:
        docs.main(["--bogus"])
    assert exit_.value.code == 2 and "--bogus" in capsys.readouterr().err
    assert not Path("--bogus").exists()


def test_protocol_md_is_generated_from_the_declaration() -> None:
    path = docs.Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
    assert path.read_text(encoding="utf-8") == docs.render(), (
        "docs/protocol.md is stale: run python -m timbrespace.protocol.docs"
    )
    text = docs.render()
    for a in addresses.ADDRESSES:
        assert f"### `{a.path}`" in text
