"""Zeroconf advertisement and browsing with real python-zeroconf, kept on loopback."""

from __future__ import annotations

import asyncio
import struct
import uuid

import pytest

from timbrespace.protocol.discovery import (
    Advertiser,
    Browser,
    Found,
    _dns_query,
    _free_name,
    _ptr_records,
    browse,
    names_in_use,
)

LO = ["127.0.0.1"]
TXT = {"txtvers": "1", "version": "1.1", "framing": "slip", "api": "1.0", "engines": "patch"}


def unique_name() -> str:
    return f"Timbrespace test {uuid.uuid4().hex[:8]}"


def test_advertise_find_rename_and_withdraw() -> None:
    async def main() -> None:
        name = unique_name()
        first = Advertiser(name, 57130, TXT, LO)
        second = Advertiser(name, 57131, {"txtvers": "1"}, LO)
        async with Browser(LO) as browser:
            await first.start()
            try:
                assert first.name == name
                assert await browser.wait_for(lambda f: ("udp", name) in f and ("tcp", name) in f, 8)
                udp, tcp = browser.found["udp", name], browser.found["tcp", name]
                assert (udp.host, udp.port, udp.protocol) == ("127.0.0.1", 57130, "udp")
                assert udp.txt == {k: v for k, v in TXT.items() if k != "framing"}
                assert (tcp.port, tcp.protocol, tcp.txt) == (57130, "tcp", TXT)

                await second.start()  # same name: must be renamed, not crash
                try:
                    renamed = f"{name}-2"
                    assert second.name == renamed and second.names == {"udp": renamed, "tcp": renamed}
                    assert await browser.wait_for(
                        lambda f: ("udp", renamed) in f and ("tcp", renamed) in f, 8
                    )
                    assert browser.found["tcp", renamed].txt == {"txtvers": "1", "framing": "slip"}
                    # python-zeroconf leaves a question unanswered when it answered the same one
                    # less than a second before (second.start() just asked it): ask until answered.
                    seen: set[str] = set()
                    for _ in range(12):
                        seen |= await names_in_use(LO, timeout=0.5)
                        if seen >= {name, renamed}:
                            break
                    assert seen >= {name, renamed}
                    # It also multicasts its answer to such a query a second or so later (later on a
                    # loaded machine: 1.5 s was once too short in CI); a goodbye sent before that
                    # answer would be undone by it, so the goodbye waits for it.
                    await asyncio.sleep(3.0)
                finally:
                    await first.stop()
                # Goodbyes are sent three times a quarter second apart; a loaded loop reads them late.
                assert await browser.wait_for(lambda f: ("udp", name) not in f and ("tcp", name) not in f, 15)
                assert ("udp", renamed) in browser.found  # the other one is still there
            finally:
                await first.stop()
                await second.stop()
            assert await browser.wait_for(lambda f: ("udp", renamed) not in f, 15)

    asyncio.run(main())


def test_browse_function_finds_length_framing() -> None:
    async def main() -> list[Found]:
        adv = Advertiser(unique_name(), 40000, {"txtvers": "1", "api": "1.0"}, LO, tcp_framing="length")
        await adv.start()
        try:
            # browse() listens for as long as it is told; on a loaded machine the answers (or their
            # resolution) can come after a short listen, so listen longer until both are heard.
            for seconds in (1.5, 3.0, 6.0):
                found = [f for f in await browse(seconds, LO) if f.name == adv.name]
                if len(found) == 2:
                    break
        finally:
            await adv.stop()
        return found

    found = asyncio.run(main())
    assert [(f.protocol, f.port) for f in found] == [("tcp", 40000), ("udp", 40000)]
    assert found[0].txt["framing"] == "length" and "framing" not in found[1].txt
    assert found[0].addresses == ("127.0.0.1",) and found[0].server.endswith(".local.")


def test_free_name_and_bad_interfaces() -> None:
    assert _free_name("Timbrespace", set()) == "Timbrespace"
    assert _free_name("Timbrespace", {"timbrespace", "Timbrespace-2"}) == "Timbrespace-3"
    with pytest.raises(ValueError, match="interfaces"):
        Advertiser("x", 1, {}, [])
    with pytest.raises(ValueError, match="interfaces"):
        Browser("lo")  # type: ignore[arg-type]


def test_ptr_parsing_and_garbage() -> None:
    q = _dns_query(("_osc._udp.local.",))
    assert _ptr_records(q) == []  # a query, not a response
    # a response: header, the question, one PTR answer whose target points back at the question name
    answer = b"\x02ab\xc0\x0c"  # "ab" + pointer to offset 12 ("_osc._udp.local.")
    resp = struct.pack(">6H", 0x5453, 0x8400, 1, 1, 0, 0) + q[12:] + b"\xc0\x0c"
    resp += struct.pack(">HHIH", 12, 1, 120, len(answer)) + answer
    assert _ptr_records(resp) == [("_osc._udp.local.", "ab._osc._udp.local.")]
    assert _ptr_records(resp[:-3]) == []
    assert _ptr_records(b"\xff" * 40) == []
    loop = struct.pack(">6H", 0, 0x8400, 0, 1, 0, 0) + b"\xc0\x0c"
    assert _ptr_records(loop) == []
