"""The OpenAI request and response shapes, sans-I/O: dicts in, typed requests out; typed
results in, dicts out.

Rules:
* Parsing is strict. A field of the wrong type, an unknown field, or a feature no backend
  here implements (streaming, n > 1, token-id input, tool messages) raises InvalidRequestError
  naming the field, so a bad job fails at once with a message that says what to fix instead
  of being silently half-served.
* Rendered responses hold only dicts, lists, str, int, float and None, so they go to msgpack
  or JSON as they are.
* No clock reads: ``created`` is passed in.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .errors import InferenceError, InvalidRequestError
from .values import CHAT_ROLES, ChatMessage, ChatResult, EmbeddingResult

__all__ = [
    "CHAT",
    "EMBEDDINGS",
    "JOB_KINDS",
    "MAX_EMBEDDING_INPUTS",
    "ChatRequest",
    "EmbeddingsRequest",
    "chat_response",
    "embeddings_response",
    "error_body",
    "error_object",
    "models_response",
    "parse_chat_request",
    "parse_embeddings_request",
]

EMBEDDINGS = "embeddings"
CHAT = "chat.completions"
JOB_KINDS = (EMBEDDINGS, CHAT)

#: OpenAI's own limit on inputs per embeddings request.
MAX_EMBEDDING_INPUTS = 2048

EncodingFormat = Literal["float", "base64"]

_EMBEDDINGS_FIELDS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})
_CHAT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "seed",
        "n",
        "stream",
        "user",
    }
)


@dataclass(frozen=True)
class EmbeddingsRequest:
    model: str
    inputs: tuple[str, ...]
    encoding_format: EncodingFormat = "float"
    dimensions: int | None = None


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[ChatMessage, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None


# -- parsing ---------------------------------------------------------------------------------


def _require_mapping(body: object) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise InvalidRequestError(f"request body must be a JSON object, got {type(body).__name__}")
    return body


def _check_fields(body: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
    unknown = sorted(str(k) for k in body if k not in allowed)
    if unknown:
        raise InvalidRequestError(
            f"unrecognized field(s) in {what} request: {', '.join(unknown)} (accepted: {', '.join(sorted(allowed))})",
            param=unknown[0],
        )


def _model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise InvalidRequestError("missing required field 'model'", param="model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("'model' must be a non-empty string", param="model")
    return model


def _optional_int(body: Mapping[str, Any], name: str, *, minimum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(f"'{name}' must be an integer", param=name)
    if value < minimum:
        raise InvalidRequestError(f"'{name}' must be >= {minimum}, got {value}", param=name)
    return value


def _optional_number(body: Mapping[str, Any], name: str, *, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequestError(f"'{name}' must be a number", param=name)
    if not low <= value <= high:
        raise InvalidRequestError(f"'{name}' must be between {low:g} and {high:g}, got {value}", param=name)
    return float(value)


def parse_embeddings_request(body: object) -> EmbeddingsRequest:
    """Validate a /v1/embeddings request body."""
    body = _require_mapping(body)
    _check_fields(body, _EMBEDDINGS_FIELDS, "embeddings")
    model = _model(body)

    raw = body.get("input")
    if raw is None:
        raise InvalidRequestError("missing required field 'input'", param="input")
    if isinstance(raw, str):
        inputs: tuple[str, ...] = (raw,)
    elif isinstance(raw, list | tuple):
        if not raw:
            raise InvalidRequestError("'input' must not be an empty list", param="input")
        for i, item in enumerate(raw):
            if not isinstance(item, str):
                raise InvalidRequestError(
                    f"'input' must be a string or a list of strings; input[{i}] is "
                    f"{type(item).__name__} (token-id input is not supported)",
                    param="input",
                )
        inputs = tuple(raw)
    else:
        raise InvalidRequestError(
            f"'input' must be a string or a list of strings, got {type(raw).__name__}",
            param="input",
        )
    if len(inputs) > MAX_EMBEDDING_INPUTS:
        raise InvalidRequestError(
            f"'input' holds {len(inputs)} strings; at most {MAX_EMBEDDING_INPUTS} per request",
            param="input",
        )

    encoding = body.get("encoding_format", "float")
    if encoding is None:
        encoding = "float"
    if encoding not in ("float", "base64"):
        raise InvalidRequestError(
            f"'encoding_format' must be 'float' or 'base64', got {encoding!r}",
            param="encoding_format",
        )
    dimensions = _optional_int(body, "dimensions", minimum=1)
    return EmbeddingsRequest(model, inputs, encoding, dimensions)


def _message_content(raw: object, where: str) -> str:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list):
        texts = []
        for j, part in enumerate(raw):
            if not isinstance(part, Mapping) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise InvalidRequestError(
                    f"{where}.content[{j}] must be {{'type': 'text', 'text': str}}; only text content is supported",
                    param=f"{where}.content",
                )
            texts.append(part["text"])
        return "\n".join(texts)
    raise InvalidRequestError(f"{where}.content must be a string or a list of text parts", param=f"{where}.content")


def _messages(body: Mapping[str, Any]) -> tuple[ChatMessage, ...]:
    raw = body.get("messages")
    if raw is None:
        raise InvalidRequestError("missing required field 'messages'", param="messages")
    if not isinstance(raw, list | tuple) or not raw:
        raise InvalidRequestError("'messages' must be a non-empty list", param="messages")
    messages = []
    for i, item in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(item, Mapping):
            raise InvalidRequestError(f"{where} must be an object", param=where)
        role = item.get("role")
        if role not in CHAT_ROLES:
            raise InvalidRequestError(
                f"{where}.role must be one of {', '.join(sorted(CHAT_ROLES))}, got {role!r}",
                param=f"{where}.role",
            )
        messages.append(ChatMessage(role, _message_content(item.get("content"), where)))
    return tuple(messages)


def parse_chat_request(body: object) -> ChatRequest:
    """Validate a /v1/chat/completions request body."""
    body = _require_mapping(body)
    _check_fields(body, _CHAT_FIELDS, "chat.completions")
    model = _model(body)
    messages = _messages(body)

    if body.get("stream"):
        raise InvalidRequestError("streaming responses are not supported", param="stream")
    n = _optional_int(body, "n", minimum=1)
    if n is not None and n != 1:
        raise InvalidRequestError("only n=1 is supported", param="n")
    max_tokens = _optional_int(body, "max_completion_tokens", minimum=1)
    if max_tokens is None:
        max_tokens = _optional_int(body, "max_tokens", minimum=1)
    temperature = _optional_number(body, "temperature", low=0.0, high=2.0)
    top_p = _optional_number(body, "top_p", low=0.0, high=1.0)
    seed = _optional_int(body, "seed", minimum=-(2**63))

    raw_stop = body.get("stop")
    if raw_stop is None:
        stop: tuple[str, ...] = ()
    elif isinstance(raw_stop, str):
        stop = (raw_stop,)
    elif isinstance(raw_stop, list) and all(isinstance(s, str) for s in raw_stop):
        stop = tuple(raw_stop)
    else:
        raise InvalidRequestError("'stop' must be a string or a list of strings", param="stop")
    return ChatRequest(model, messages, max_tokens, temperature, top_p, stop, seed)


# -- rendering -------------------------------------------------------------------------------


def _base64_float32(vector: Sequence[float]) -> str:
    """OpenAI's base64 encoding: the vector as little-endian float32."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def embeddings_response(request: EmbeddingsRequest, result: EmbeddingResult) -> dict[str, Any]:
    """The /v1/embeddings response body for a result of ``request``."""
    if len(result.vectors) != len(request.inputs):
        raise InferenceError(f"backend returned {len(result.vectors)} vectors for {len(request.inputs)} inputs")
    if request.dimensions is not None and request.dimensions != result.dimensions:
        raise InvalidRequestError(
            f"model {result.model!r} returns {result.dimensions}-dimensional vectors; "
            f"dimensions={request.dimensions} is not supported",
            param="dimensions",
        )
    data: list[dict[str, Any]] = []
    for index, vector in enumerate(result.vectors):
        embedding: list[float] | str = _base64_float32(vector) if request.encoding_format == "base64" else list(vector)
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": result.model,
        "usage": {
            "prompt_tokens": result.usage.prompt_tokens,
            "total_tokens": result.usage.total_tokens,
        },
    }


def chat_response(result: ChatResult, *, response_id: str, created: int) -> dict[str, Any]:
    """The /v1/chat/completions response body (one choice, not streamed)."""
    return {
        "id": response_id,
        "object": "chat.completion",
        "created": created,
        "model": result.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.content},
                "finish_reason": result.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": result.usage.prompt_tokens,
            "completion_tokens": result.usage.completion_tokens,
            "total_tokens": result.usage.total_tokens,
        },
    }


def models_response(models: Sequence[str], *, owned_by: str = "stratumkit") -> dict[str, Any]:
    """The /v1/models response body."""
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 0, "owned_by": owned_by} for m in models],
    }


def error_object(message: str, error_type: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape, ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_body(exc: InferenceError) -> dict[str, Any]:
    """OpenAI's error shape for ``exc``."""
    return error_object(exc.message, exc.error_type, param=exc.param, code=exc.code)
