"""Where the HTTP API listens: parsing ``[daemon] api`` and telling loopback from the rest.

Pure and stdlib-only, so the config models can validate ``api`` without importing the
server.
"""

from __future__ import annotations

import ipaddress

OFF = "off"


def parse_bind(text: str) -> tuple[str, int]:
    """``"host:port"`` (``"[::1]:8787"`` for IPv6) as (host, port); ValueError if it is not one.

    Port 0 asks the system for a free port (tests use it).
    """
    host, colon, port_text = text.strip().rpartition(":")
    if not colon or not host or not port_text.isdigit() or not port_text.isascii():
        raise ValueError('must be "host:port" (like "127.0.0.1:8787" or "[::1]:8787"), or "off"')
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError('write an IPv6 address in brackets, like "[::1]:8787"')
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port {port} is outside 0-65535")
    return host, port


def is_loopback(host: str) -> bool:
    """Whether ``host`` only reaches this machine: 127.0.0.0/8, ::1 or ``localhost``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # another name: it may resolve anywhere


def is_loopback_host(header: str) -> bool:
    """Whether a request's ``Host`` header (``name``, ``name:port``, ``[v6]:port``) names
    this machine by a loopback name or address: what a browser sends to a server it reached
    at 127.0.0.1, [::1] or localhost, and never to one a DNS-rebinding page reached through
    its own name."""
    text = header.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or ":" not in host or (rest and not rest.startswith(":")):
            return False
        port = rest[1:]
    else:
        host, _, port = text.partition(":")
        if ":" in port:
            return False  # an IPv6 address without brackets is no Host
    if port and not (port.isdigit() and port.isascii()):
        return False
    return bool(host) and is_loopback(host)


def public_url_for(host: str, port: int, hostname: str, *, tls: bool = False) -> str:
    """Where clients reach an API bound to ``host``:``port``: ``http://host:port`` (or
    ``https://`` when it serves ``tls``), with a wildcard address (``0.0.0.0``, ``::``)
    replaced by ``hostname``, this machine's name (a wildcard is where the server listens,
    not an address anyone can reach)."""
    try:
        wildcard = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        wildcard = False
    if wildcard or not host:
        host = hostname
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"
