"""Who may call the API's /v1 routes: a token, or a read from the pool's own host.

The rule, decided by the peer address of the TCP connection (never by what a request claims):

* "A token is set" means the admin ``api_token`` or any integrator's token exists; who a token
  names, and what it may see, is `stratumkit.api.tenants`'.
* A request that carries an ``Authorization`` header has it checked, wherever it comes from: a
  wrong token is a 401, not silently ignored.
* Without one, a *read* (GET, HEAD) from the same host is let through as the operator's: the
  operator's dashboard and ``stratumkit stats`` work on the pool's machine without the token. "The same host" is a
  loopback peer (127.0.0.0/8, ::1) whose request also
  - carries no proxy header (``Forwarded``, ``X-Forwarded-For``, ``X-Real-IP``): a reverse proxy
    on the same host would otherwise make every remote client local;
  - names a loopback host in ``Host`` (``localhost``, ``127.x.x.x``, ``[::1]``): a page of another
    site whose name a DNS rebinding points at 127.0.0.1 shares the peer, not the host name;
  - and, if it has an ``Origin``, comes from this very origin: another site's page in the
    operator's browser cannot use the exemption.
* Anything else needs the token when one is set (401). With no token set, the same-host reads and
  writes are open as before, and every other request is refused (403): an API without a token
  is reachable from its own host only, whatever ``api_host`` it binds.

Writes (POST) from the same host need the token when one is set: any local process could
otherwise lease rigs or message miners.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from stratumkit.asgi import HTTPError, Request

from .tenants import OPERATOR, Tenants

__all__ = ["REFUSAL", "ApiAccess", "is_same_host"]

#: The 403 message: no token is set and the request is not from the pool's own host.
REFUSAL = "this API has no api_token and answers its own host only: set api_token to reach it from elsewhere"

_READS = frozenset({"GET", "HEAD"})
_PROXY_HEADERS = (b"forwarded", b"x-forwarded-for", b"x-real-ip")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def _is_loopback_address(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _host_name(authority: str) -> str:
    """The host of ``host[:port]`` or ``[v6]:port``, lower case."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        return authority[: authority.find("]") + 1]
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def _is_loopback_host(authority: str) -> bool:
    name = _host_name(authority)
    return name in _LOOPBACK_NAMES or name.endswith(".localhost") or _is_loopback_address(name)


def is_same_host(request: Request) -> bool:
    """Whether `request` comes from the pool's own host and from no other site (see the module)."""
    client = request.scope.get("client")
    if not client or not _is_loopback_address(str(client[0])):
        return False
    if any(request.header(name) is not None for name in _PROXY_HEADERS):
        return False
    host = request.header(b"host")
    if host is None or not _is_loopback_host(host.decode("latin-1")):
        return False
    origin = request.header(b"origin")
    if origin is None:
        return True
    parts = urlsplit(origin.decode("latin-1"))
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.decode("latin-1").strip().lower()


class ApiAccess:
    """The rule of the module over the pool's tokens."""

    def __init__(self, tenants: Tenants) -> None:
        self._tenants = tenants

    def token_needed(self, request: Request) -> bool:
        """Whether a read from where `request` comes from must carry a token."""
        return self._tenants.enabled and not is_same_host(request)

    def refused(self, request: Request) -> bool:
        """Whether requests from where `request` comes from are refused whatever they carry."""
        return not self._tenants.enabled and not is_same_host(request)

    def check(self, request: Request) -> None:
        """Name the caller on `request` (`tenants.principal`), or HTTPError 401 (token missing or
        wrong) or 403 (no token set, not from this host)."""
        same_host = is_same_host(request)
        if not self._tenants.enabled:
            if not same_host:
                raise HTTPError(403, REFUSAL, code="forbidden")
            self._tenants.assign(request, OPERATOR)
            return
        if same_host and request.method in _READS and request.header(b"authorization") is None:
            self._tenants.assign(request, OPERATOR)
            return
        self._tenants.identify(request)
