"""The ``/play`` page's URL as a phone on the LAN reaches it, and its QR code for the terminal."""

from __future__ import annotations

import io
import ipaddress

import ifaddr

__all__ = ["lan_address", "page_url", "qr_text"]

#: Addresses that mean "every interface": a browser elsewhere needs one of the machine's own.
_ANY = {"", "0.0.0.0", "::"}


def lan_address(host: str) -> str:
    """``host`` when it names one interface, else this machine's first private IPv4 address (what a
    phone on the same Wi-Fi reaches), else its first non-loopback one, else 127.0.0.1."""
    if host not in _ANY:
        return host
    found: list[ipaddress.IPv4Address] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                addr = ipaddress.IPv4Address(ip.ip)
                if not addr.is_loopback and not addr.is_link_local:
                    found.append(addr)
    for addr in (*(a for a in found if a.is_private), *found):
        return str(addr)
    return "127.0.0.1"


def page_url(host: str, port: int) -> str:
    """The page's URL on the HTTP server listening on ``host``:``port``."""
    addr = lan_address(host)
    if ":" in addr:  # an IPv6 literal goes in brackets
        addr = f"[{addr}]"
    return f"http://{addr}:{port}/play"


def qr_text(url: str) -> str:
    """``url`` as a QR code drawn with block characters, two modules a line (a terminal's cells are
    about twice as tall as wide), with the quiet zone a scanner needs."""
    import segno

    out = io.StringIO()
    segno.make(url, error="m").terminal(out=out, compact=True, border=2)
    return out.getvalue()
