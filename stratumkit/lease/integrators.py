"""Integrators and their API tokens: who is calling, so that a lease belongs to the one who made it.

Tokens come from the configuration (``integrator_tokens``: name -> token) or are issued by the
operator (the admin token) through the API, in which case only their SHA-256 digest is kept, in
the lease store, so they survive a restart and a stolen database reveals no token. A name may hold
several tokens (issue a new one, then retire the old one from the config or the store).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping

from .errors import RequestError

__all__ = ["Integrators", "digest"]

_NAME_RE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Integrators:
    def __init__(self, configured: Mapping[str, str] | None = None) -> None:
        self._by_digest = {digest(token): name for name, token in (configured or {}).items()}

    @property
    def enabled(self) -> bool:
        return bool(self._by_digest)

    def add_issued(self, issued: Mapping[str, str]) -> None:
        """Digests (digest -> name) read back from the store."""
        self._by_digest.update(issued)

    def name_of(self, token: str) -> str | None:
        return self._by_digest.get(digest(token)) if token else None

    def issue(self, name: object) -> tuple[str, str]:
        """A new token for ``name``: (token, its digest); the caller stores the digest."""
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise RequestError("an integrator name is 1..64 letters, digits or _ . @ -")
        token = "skint_" + secrets.token_urlsafe(32)
        return token, digest(token)

    def admit(self, name: str, token_digest: str) -> None:
        self._by_digest[token_digest] = name
