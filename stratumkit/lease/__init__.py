"""Leasing GPU rigs to AI inference queues: a pure controller, and the trio service that runs it.

The pure part does no I/O and reads no clock: the controller takes time as ``now`` (monotonic
seconds) and answers with actions; beside it are the values (model), actions, errors, accounting,
the dual-mode policy (policy) and the snapshot codec. This package exports the controller and
those values, actions, errors and accounting.

The I/O part is :mod:`stratumkit.lease.service`: the trio service that runs the controller on
trio's clock, carries its actions out on rigs' stratum connections and the job queue, and answers
the rigs' extension requests; it keeps the controller in a lease store (:mod:`.store`, SQLite in
:mod:`.sqlite_store`, Redis in :mod:`.redis_store`) through :mod:`.persister`. Import it from
its module; importing this package does not import trio.
"""

from .accounting import LeaseUsage, RigUsage, usage
from .actions import (
    Action,
    DivertRig,
    LeaseExtended,
    LeaseStateChanged,
    RequeueInFlight,
    ReturnRig,
    RigReleased,
)
from .controller import TRANSITIONS, LeaseController
from .errors import (
    BadCapabilities,
    BadLeaseSpec,
    BadSelector,
    BadSnapshot,
    BadValue,
    DuplicateLease,
    DuplicateRig,
    InvalidTransition,
    LeaseError,
    NoEligibleRigs,
    StaleToken,
    UnknownLease,
    UnknownRig,
)
from .model import (
    GPU,
    Assignment,
    Lease,
    LeaseSpec,
    LeaseState,
    ReleaseReason,
    Rig,
    RigCapabilities,
    RigPhase,
    Selector,
)

__all__ = [
    "GPU",
    "TRANSITIONS",
    "Action",
    "Assignment",
    "BadCapabilities",
    "BadLeaseSpec",
    "BadSelector",
    "BadSnapshot",
    "BadValue",
    "DivertRig",
    "DuplicateLease",
    "DuplicateRig",
    "InvalidTransition",
    "Lease",
    "LeaseController",
    "LeaseError",
    "LeaseExtended",
    "LeaseSpec",
    "LeaseState",
    "LeaseStateChanged",
    "LeaseUsage",
    "NoEligibleRigs",
    "ReleaseReason",
    "RequeueInFlight",
    "ReturnRig",
    "Rig",
    "RigCapabilities",
    "RigPhase",
    "RigReleased",
    "RigUsage",
    "Selector",
    "StaleToken",
    "UnknownLease",
    "UnknownRig",
    "usage",
]
