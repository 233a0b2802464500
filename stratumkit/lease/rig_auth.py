"""Which connections may register as rigs: a per-rig or per-fleet secret, checked at registration.

A registered rig is sent customers' job payloads, and a low declared hashrate gets it drafted
first, so when the pool is given secrets only a connection that presents the right one may
register. A refused connection is told why and stays what it was: a plain miner.

Rules:

- A rig with its own secret (``rig_secrets[rig_id]``) must present that one; the fleet secret
  (``rig_secret``) does not stand in for it. Any other rig must present the fleet secret.
- No secrets configured: every authorized connection may register (the behaviour without auth).
- Secrets are compared in constant time and never logged or echoed.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

__all__ = ["RigAuth"]


class RigAuth:
    def __init__(self, fleet_secret: str | None = None, rig_secrets: Mapping[str, str] | None = None) -> None:
        self._fleet = fleet_secret.encode() if fleet_secret else None
        self._own = {rig_id: secret.encode() for rig_id, secret in (rig_secrets or {}).items()}

    @property
    def enabled(self) -> bool:
        return self._fleet is not None or bool(self._own)

    def refusal(self, rig_id: str, secret: str | None) -> str | None:
        """Why this rig may not register with this secret, or None if it may."""
        if not self.enabled:
            return None
        expected = self._own.get(rig_id, self._fleet)
        if expected is None:
            return f"rig {rig_id!r} has no secret on this pool"
        if secret is None:
            return "this pool wants a rig secret"
        if not hmac.compare_digest(secret.encode(), expected):
            return "wrong rig secret"
        return None
