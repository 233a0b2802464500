"""Sans-I/O Stratum V1: line framing, JSON-RPC codec, and both ends of the conversation.

``ServerConnection`` is the pool side of one miner's connection, ``ClientConnection`` the miner
side of one pool connection. Neither touches a socket or a clock: feed received bytes to
``receive_data()``, act on the events it returns, send what ``data_to_send()`` hands back.
"""

from .client import ClientConnection, ClientState
from .errors import (
    ErrorCode,
    LineTooLong,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    TlsOnPlainPort,
)
from .events import (
    FULL_VERSION_MASK,
    Authorize,
    AuthorizeResult,
    BadRequest,
    Configure,
    ConfigureResult,
    ConnectionClosed,
    ErrorReply,
    Event,
    ExtensionNotification,
    ExtensionRequest,
    ExtranonceSubscribe,
    GetVersion,
    Notify,
    ProtocolViolation,
    Reconnect,
    Response,
    SetDifficulty,
    SetExtranonce,
    SetVersionMask,
    ShowMessage,
    Submit,
    SubmitResult,
    Subscribe,
    SubscribeResult,
    SuggestDifficulty,
    SuggestTarget,
)
from .framing import DEFAULT_MAX_LINE_LENGTH, LineBuffer
from .jsonrpc import RequestId
from .server import EXTRANONCE2_SIZES, ServerConnection, ServerState

__all__ = [
    "DEFAULT_MAX_LINE_LENGTH",
    "EXTRANONCE2_SIZES",
    "FULL_VERSION_MASK",
    "Authorize",
    "AuthorizeResult",
    "BadRequest",
    "ClientConnection",
    "ClientState",
    "Configure",
    "ConfigureResult",
    "ConnectionClosed",
    "ErrorCode",
    "ErrorReply",
    "Event",
    "ExtensionNotification",
    "ExtensionRequest",
    "ExtranonceSubscribe",
    "GetVersion",
    "LineBuffer",
    "LineTooLong",
    "LocalProtocolError",
    "Notify",
    "ProtocolError",
    "ProtocolViolation",
    "Reconnect",
    "RemoteProtocolError",
    "RequestId",
    "Response",
    "ServerConnection",
    "ServerState",
    "SetDifficulty",
    "SetExtranonce",
    "SetVersionMask",
    "ShowMessage",
    "Submit",
    "SubmitResult",
    "Subscribe",
    "SubscribeResult",
    "SuggestDifficulty",
    "SuggestTarget",
    "TlsOnPlainPort",
]
