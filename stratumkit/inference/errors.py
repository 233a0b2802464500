"""Why an inference request failed, typed so that callers can act on it.

Two questions matter to whoever holds a failed job:

* ``retryable`` -- may the same job succeed later (the backend is starting, the upstream
  server answered 5xx), or is the job itself at fault (bad payload, unknown model)? A queue
  consumer requeues the first kind and dead-letters the second.
* ``http_status`` / ``error_type`` -- what our OpenAI-compatible server answers with, in the
  OpenAI error shape ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "InferenceError",
    "InvalidRequestError",
    "UnknownModelError",
    "UnsupportedError",
    "UpstreamError",
]


class InferenceError(Exception):
    """Base class: an inference request could not be served."""

    retryable: bool = False
    http_status: int = 500
    error_type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: The request field at fault, as OpenAI names it (``"input"``, ``"messages[2].role"``).
        self.param = param


class InvalidRequestError(InferenceError):
    """The job or request body is malformed: retrying the same payload cannot help."""

    http_status = 400
    error_type = "invalid_request_error"


class UnknownModelError(InvalidRequestError):
    """The backend does not serve the requested model."""

    http_status = 404
    code = "model_not_found"

    def __init__(self, model: str, available: list[str]) -> None:
        listed = ", ".join(repr(m) for m in available) or "none"
        super().__init__(f"model {model!r} is not served here (available: {listed})", param="model")
        self.model = model
        self.available = list(available)


class UnsupportedError(InvalidRequestError):
    """The request is well formed but this backend or model cannot do it (chat on an
    embedding model, streaming)."""


class BackendUnavailableError(InferenceError):
    """The backend cannot be reached or is not ready: the job may succeed later."""

    retryable = True
    http_status = 503
    error_type = "service_unavailable"


class UpstreamError(InferenceError):
    """An upstream OpenAI-compatible server answered with an error or with a body we cannot
    read. ``status`` is its HTTP status, or None when the body was malformed."""

    def __init__(self, message: str, *, status: int | None, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.status = status
        # A 4xx says the request was at fault and is passed on as it came; anything else is
        # the upstream server's fault (including an unreadable body), which may pass.
        if status is not None and 400 <= status < 500 and status not in (408, 429):
            self.retryable = False
            self.http_status = status
            self.error_type = "invalid_request_error"
        else:
            self.retryable = True
            self.http_status = 502
            self.error_type = "upstream_error"
