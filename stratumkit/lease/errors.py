"""Typed errors of the lease layer.

Every error the lease package raises on purpose is a :class:`LeaseError`, so the I/O layer can
catch the family in one place and map it to a stratum or HTTP error reply. Errors about a bad
value also derive from :class:`ValueError`, and errors about an unknown id from
:class:`LookupError`, so generic handlers keep working.
"""

from __future__ import annotations

__all__ = [
    "BadCapabilities",
    "BadLeaseSpec",
    "BadSelector",
    "BadSnapshot",
    "BadValue",
    "DuplicateLease",
    "DuplicateRig",
    "InvalidTransition",
    "LeaseError",
    "NoEligibleRigs",
    "RequestError",
    "StaleToken",
    "Unavailable",
    "UnknownLease",
    "UnknownRig",
]


class LeaseError(Exception):
    """Base class of every error raised by :mod:`stratumkit.lease`."""


class BadValue(LeaseError, ValueError):
    """An argument or field is out of range or of the wrong type."""


class BadSelector(BadValue):
    """A :class:`~stratumkit.lease.model.Selector` cannot select anything sensible."""


class BadLeaseSpec(BadValue):
    """A :class:`~stratumkit.lease.model.LeaseSpec` is malformed (queue, duration, priority)."""


class BadCapabilities(BadValue):
    """A rig declared capabilities that cannot be true (negative VRAM, no GPU, NaN hashrate)."""


class BadSnapshot(BadValue):
    """A snapshot given to ``LeaseController.restore`` is malformed or of an unknown version."""


class UnknownLease(LeaseError, LookupError):
    """No lease has this id."""


class UnknownRig(LeaseError, LookupError):
    """No rig has this id (or the rig never took part in the lease named)."""


class DuplicateLease(LeaseError):
    """A lease with this id exists already."""


class DuplicateRig(LeaseError):
    """A rig registered while a connection for the same rig id is still open."""


class InvalidTransition(LeaseError):
    """The event is not allowed in the current state of the lease or of the rig."""


class NoEligibleRigs(LeaseError):
    """Fewer idle rigs match the selector than the lease requires."""

    def __init__(self, message: str, *, required: int, available: int) -> None:
        super().__init__(message)
        self.required = required
        self.available = available


class StaleToken(LeaseError):
    """An acknowledgement quoted a token that is not the rig's current one.

    Tokens fence commands: after a rig is sent a newer command, acknowledgements of older
    commands (delayed, duplicated, or from a previous connection) must not move it.
    """

    def __init__(self, rig_id: str, token: int, current: int | None) -> None:
        held = "no token" if current is None else f"token {current}"
        super().__init__(f"rig {rig_id!r}: token {token} is stale (the rig holds {held})")
        self.rig_id = rig_id
        self.token = token
        self.current = current


class RequestError(ValueError):
    """An integrator's request is invalid (the HTTP API answers 400 with the message)."""


class Unavailable(Exception):
    """Something the request needs (the lease store, the job queue) is down: the HTTP API answers
    503 with the message, and the request may be retried."""
