"""The client's address of a request: REMOTE_ADDR, or X-Forwarded-For read from the right through trusted proxies."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.http import HttpRequest

from taskops.conf import config

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    """TASKOPS_TRUSTED_PROXIES as networks (a bare address is a network of one)."""
    return tuple(ipaddress.ip_network(proxy.strip(), strict=False) for proxy in proxies if proxy.strip())


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.7:51234"
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    """The address the request came from, as far as the trusted proxies vouch for it.

    With no trusted proxy configured this is REMOTE_ADDR, whatever headers the client sent.
    Otherwise X-Forwarded-For is read from the right: each hop appended by a trusted proxy is
    believed, and the first address that is not a trusted proxy is the client. An entry that is
    not an address ends the walk at the last hop a trusted proxy vouched for.
    """
    remote = _address(request.META.get("REMOTE_ADDR") or "")
    networks = _networks(tuple(config.trusted_proxies))
    if remote is None:
        return None
    if not networks:
        return str(remote)
    hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    current = remote
    while any(current in network for network in networks) and hops:
        previous = _address(hops.pop())
        if previous is None:
            break
        current = previous
    return str(current)
