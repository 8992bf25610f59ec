from __future__ import annotations

import ipaddress

from proca_server.config import Settings

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_local_domain(domain: str) -> bool:
    host = domain.strip().lower().strip("[]")
    if host in LOCAL_NAMES or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def public_url(settings: Settings, path: str = "/") -> str:
    """An absolute link to this server, for emails: https://DOMAIN, except on a local domain
    where the server is reached directly at http://DOMAIN:PORT."""
    if not path.startswith("/"):
        path = "/" + path
    domain = settings.domain.strip()
    if is_local_domain(domain):
        host = f"[{domain.strip('[]')}]" if ":" in domain.strip("[]") else domain
        return f"http://{host}:{settings.port}{path}"
    return f"https://{domain}{path}"


def uses_https(settings: Settings) -> bool:
    return not is_local_domain(settings.domain)
