"""Who calls the API: the operator (the admin token) or an integrator (an integrator token).

Rules:

- No admin token and no integrator token anywhere: every caller the API lets in is the operator
  (where the API lets callers in without a token: `stratumkit.api.access`).
- Otherwise a call with a token is the token's: 401 for an unknown one.
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

    @property
    def enabled(self) -> bool:
        """Whether any token exists (the admin's, or an integrator's)."""
        return self._admin is not None or self._leases.has_integrators

    def assign(self, request: Request, who: Principal) -> None:
        """Remember `who` as the caller of `request` (for :func:`principal`)."""
        request.scope[_SCOPE_KEY] = who

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
