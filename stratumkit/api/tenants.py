"""Who calls the API: the operator (the admin token) or an integrator (an integrator token).

Rules:

- No admin token and no integrator token anywhere: the API is open and every caller is the
  operator (a pool on a private network, as before tokens existed).
- Otherwise every /v1 call needs a known token: 401 without one.
- The operator sees and may do everything, and alone may issue integrator tokens and message miners
  (403 for an integrator). An integrator sees only its own leases: another's lease is 404, exactly
  as if it did not exist, and the lease list and the event stream leave others' leases out.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from stratumkit.asgi import HTTPError, Request, bearer_token

from .ports import LeaseAPI

__all__ = ["OPERATOR", "Principal", "Tenants", "principal", "require_operator"]

_SCOPE_KEY = "stratumkit.principal"


@dataclass(frozen=True)
class Principal:
    name: str | None  # the integrator; None for the operator
    operator: bool

    def owns(self, owner: str | None) -> bool:
        return self.operator or owner == self.name


OPERATOR = Principal(None, True)


class Tenants:
    def __init__(self, admin_token: str | None, leases: LeaseAPI) -> None:
        self._admin = admin_token.encode() if admin_token else None
        self._leases = leases

    def identify(self, request: Request) -> Principal:
        """Who sent the request (remembered on it for :func:`principal`); HTTPError 401 if unknown."""
        found = self._identify(request)
        request.scope[_SCOPE_KEY] = found
        return found

    def _identify(self, request: Request) -> Principal:
        token = bearer_token(request)
        if self._admin is not None and hmac.compare_digest(token, self._admin):
            return OPERATOR
        if self._admin is None and not self._leases.has_integrators:
            return OPERATOR
        name = self._leases.integrator(token.decode(errors="replace"))
        if name is not None:
            return Principal(name, False)
        raise HTTPError(
            401,
            "missing or invalid API token (send Authorization: Bearer <token>)",
            code="invalid_api_key",
            headers=[(b"www-authenticate", b"Bearer")],
        )


def principal(request: Request) -> Principal:
    """The caller of a /v1 request, as :meth:`Tenants.identify` found it."""
    found: Any = request.scope.get(_SCOPE_KEY, OPERATOR)
    assert isinstance(found, Principal)
    return found


def require_operator(request: Request) -> None:
    if not principal(request).operator:
        raise HTTPError(403, "only the operator (the admin token) may do this")
