"""Leasing GPU rigs to AI inference queues: a pure controller, its policy and accounting.

Everything here is sans-I/O: time comes in as ``now`` (monotonic seconds), and the controller
answers with actions for the trio layer to carry out.
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
