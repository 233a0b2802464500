"""Actions the lease controller returns for the I/O layer to carry out, in order.

Two kinds share one list. Commands to a rig (:class:`DivertRig`, :class:`ReturnRig`) become
stratum notifications on that rig's connection; a command for a rig that is not connected is
dropped (the controller re-sends it if the rig resumes). :class:`RequeueInFlight` goes to the
queue engine. :class:`LeaseStateChanged`, :class:`LeaseExtended` and :class:`RigReleased` are
events for the integrator's event stream and the logs.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import LeaseState, ReleaseReason

__all__ = [
    "Action",
    "DivertRig",
    "LeaseExtended",
    "LeaseStateChanged",
    "RequeueInFlight",
    "ReturnRig",
    "RigReleased",
]


@dataclass(frozen=True, slots=True)
class DivertRig:
    """Stop giving the rig work; tell its agent to serve ``queue`` until told to return.

    ``ends_at`` is advisory (the controller's clock): the lease ends when a ReturnRig comes.
    The agent acknowledges with ``rig_serving(rig_id, token)``.
    """

    rig_id: str
    lease_id: str
    token: int
    queue: str
    ends_at: float


@dataclass(frozen=True, slots=True)
class ReturnRig:
    """Tell the agent to stop serving and mine again; then send it fresh work.

    The I/O layer follows this with ``set_difficulty`` and ``notify(clean_jobs=true)``, and calls
    ``rig_returned(rig_id, token)`` when the agent confirms.
    """

    rig_id: str
    lease_id: str
    token: int


@dataclass(frozen=True, slots=True)
class RequeueInFlight:
    """Put back on ``queue`` every job the rig had taken and not finished.

    Emitted whenever a rig leaves a lease without a clean return acknowledgement (an agent
    acknowledges its return only after releasing its jobs). Requeueing a rig that held nothing
    is harmless, so this errs on the side of emitting.
    """

    rig_id: str
    lease_id: str
    queue: str


@dataclass(frozen=True, slots=True)
class LeaseStateChanged:
    """The lease moved from ``old`` to ``new``; ``old`` is None when the lease is created."""

    lease_id: str
    old: LeaseState | None
    new: LeaseState


@dataclass(frozen=True, slots=True)
class LeaseExtended:
    """The lease's end moved to ``ends_at``."""

    lease_id: str
    ends_at: float


@dataclass(frozen=True, slots=True)
class RigReleased:
    """A rig stopped serving the lease before the lease ended, for ``reason``."""

    rig_id: str
    lease_id: str
    reason: ReleaseReason


Action = DivertRig | ReturnRig | RequeueInFlight | LeaseStateChanged | LeaseExtended | RigReleased
