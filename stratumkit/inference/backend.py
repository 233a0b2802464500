"""The inference backend interface, and the job runner that serves OpenAI-shaped jobs on it.

A rig's agent holds one InferenceBackend: an OpenAI-compatible HTTP server (vLLM, llama.cpp,
Ollama; see openai_http) or an in-process CPU model (see minilm). While the rig is leased, the
agent takes jobs from the lease's queue and calls :func:`run_job` on each; the same function
serves our own HTTP endpoint (see server), so a job and an HTTP request are one code path.

Rules for implementations:
* ``start()`` and ``wake()`` are idempotent and may be called concurrently; after either
  returns, ``ready()`` is True (or they raised). ``wake()`` exists for backends that can
  sleep (unload weights, stop a process) while the rig mines.
* ``models()`` never does I/O: it answers from what ``start()`` learned.
* Failures raise InferenceError subclasses only (see errors); anything else is a bug.
* Blocking work (a forward pass) leaves the trio event loop free.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from .errors import (
    BackendUnavailableError,
    InferenceError,
    InvalidRequestError,
    UnknownModelError,
    UnsupportedError,
    UpstreamError,
)
from .values import ChatMessage, ChatResult, EmbeddingResult, Usage
from .wire import (
    CHAT,
    EMBEDDINGS,
    JOB_KINDS,
    chat_response,
    embeddings_response,
    parse_chat_request,
    parse_embeddings_request,
)

__all__ = [
    "CHAT",
    "EMBEDDINGS",
    "JOB_KINDS",
    "BackendUnavailableError",
    "ChatMessage",
    "ChatResult",
    "EmbeddingResult",
    "InferenceBackend",
    "InferenceError",
    "InvalidRequestError",
    "UnknownModelError",
    "UnsupportedError",
    "UpstreamError",
    "Usage",
    "handle_request",
    "run_job",
]


@runtime_checkable
class InferenceBackend(Protocol):
    """What the agent and the HTTP server need from a model runtime."""

    async def start(self) -> None:
        """Make the backend ready (load weights, connect, learn the model list)."""

    async def wake(self) -> None:
        """Make the backend ready again after the rig went back to mining."""

    async def ready(self) -> bool:
        """Whether a request sent now would be served; never raises."""

    def models(self) -> list[str]:
        """The model ids this backend serves, as learned by ``start()``."""

    async def embed(self, model: str, inputs: list[str]) -> EmbeddingResult:
        """One vector per input, in order."""

    async def chat(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        max_tokens: int | None = None,
        *,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: Sequence[str] = (),
        seed: int | None = None,
    ) -> ChatResult:
        """The assistant's reply to ``messages``; UnsupportedError if the model cannot chat."""

    async def close(self) -> None:
        """Release what ``start()`` acquired; the backend may be started again afterwards."""


async def handle_request(
    backend: InferenceBackend, kind: object, body: object, *, now: float | None = None
) -> dict[str, Any]:
    """Serve one OpenAI request body of the given kind; return the OpenAI response body.

    ``now`` (seconds since the epoch) stamps a chat completion's ``created``; the wall clock
    is read only when it is not given.
    """
    if kind == EMBEDDINGS:
        emb = parse_embeddings_request(body)
        result = await backend.embed(emb.model, list(emb.inputs))
        return embeddings_response(emb, result)
    if kind == CHAT:
        req = parse_chat_request(body)
        reply = await backend.chat(
            req.model,
            req.messages,
            req.max_tokens,
            temperature=req.temperature,
            top_p=req.top_p,
            stop=req.stop,
            seed=req.seed,
        )
        response_id = reply.response_id or f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time() if now is None else now)
        return chat_response(reply, response_id=response_id, created=created)
    raise InvalidRequestError(
        f"unknown job kind {kind!r}; expected one of {', '.join(map(repr, JOB_KINDS))}",
        param="kind",
    )


async def run_job(backend: InferenceBackend, payload: Mapping[str, Any], *, now: float | None = None) -> dict[str, Any]:
    """Run one queued job: an OpenAI request body plus ``"kind"`` (``"embeddings"`` or
    ``"chat.completions"``). Returns the OpenAI response body, which holds only msgpack-able
    values. Raises InferenceError; ``retryable`` on it says whether to requeue the job.
    """
    if not isinstance(payload, Mapping):
        raise InvalidRequestError(f"job payload must be a mapping, got {type(payload).__name__}")
    if "kind" not in payload:
        raise InvalidRequestError(
            f"job payload has no 'kind'; expected one of {', '.join(map(repr, JOB_KINDS))}",
            param="kind",
        )
    body = {k: v for k, v in payload.items() if k != "kind"}
    return await handle_request(backend, payload["kind"], body, now=now)
