"""The caller's address, believing ``X-Forwarded-For`` only from trusted proxies: pure."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


class TrustedProxies:
    def __init__(self, entries: Iterable[str]) -> None:
        self._networks = tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)

    def client_ip(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """Walk X-Forwarded-For from the right while the hop is a trusted proxy; the first
        untrusted hop is the client. Without a trusted peer the header is ignored (anyone can
        send it)."""
        if peer is None or not forwarded_for or not self._networks or not self.trusts(peer):
            return peer
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop
        return hops[0] if hops else peer
