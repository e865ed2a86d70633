"""Networks a host may belong to (``sessions.allow``, ``sessions.admin``), checked fast and bounded."""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Iterable

#: Hosts whose answer is remembered (a spoofed flood of sources cannot grow the cache past it).
_CACHE = 1024


class NetworkError(ValueError):
    """A network that cannot be read; the text names it and what was expected."""


class Networks:
    """A list of IPv4/IPv6 networks (``10.0.0.0/8``, ``::1/128``, a bare address)."""

    def __init__(self, specs: Iterable[str]) -> None:
        self.specs = list(specs)
        nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for spec in self.specs:
            try:
                nets.append(ipaddress.ip_network(str(spec), strict=False))
            except ValueError:
                raise NetworkError(f"{spec!r} is not a network; expected an address or address/prefix such "
                                   "as 192.168.0.0/16 or ::1/128") from None
        self._nets = nets
        self._cache: OrderedDict[str, bool] = OrderedDict()

    def __contains__(self, host: object) -> bool:
        if not isinstance(host, str):
            return False
        hit = self._cache.get(host)
        if hit is not None:
            return hit
        try:
            addr = ipaddress.ip_address(host.split("%", 1)[0])  # fe80::1%eth0: the zone is not the address
        except ValueError:
            ok = False
        else:
            if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
                addr = addr.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
            ok = any(addr.version == n.version and addr in n for n in self._nets)
        self._cache[host] = ok
        if len(self._cache) > _CACHE:
            self._cache.popitem(last=False)
        return ok
