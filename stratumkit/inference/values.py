"""Values that cross the InferenceBackend interface: frozen, validated, free of any wire format.

Vectors are tuples of Python floats so a result is immutable and converts to msgpack or JSON
without numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CHAT_ROLES",
    "ChatMessage",
    "ChatResult",
    "EmbeddingResult",
    "FinishReason",
    "Usage",
]

#: The message roles a chat request may carry (OpenAI's, less tool calls, which no backend
#: here implements).
CHAT_ROLES = frozenset({"system", "developer", "user", "assistant"})

#: "stop" or "length" from our backends; an upstream server may send others ("content_filter").
FinishReason = str


@dataclass(frozen=True)
class Usage:
    """Token counts as the model's own tokenizer counted them."""

    prompt_tokens: int
    completion_tokens: int = 0

    def __post_init__(self) -> None:
        if self.prompt_tokens < 0 or self.completion_tokens < 0:
            raise ValueError(f"token counts must be >= 0, got {self}")

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class EmbeddingResult:
    """One vector per input, in input order."""

    model: str
    vectors: tuple[tuple[float, ...], ...]
    usage: Usage

    def __post_init__(self) -> None:
        widths = {len(v) for v in self.vectors}
        if len(widths) > 1:
            raise ValueError(f"vectors differ in length: {sorted(widths)}")

    @property
    def dimensions(self) -> int:
        return len(self.vectors[0]) if self.vectors else 0


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str

    def __post_init__(self) -> None:
        if self.role not in CHAT_ROLES:
            raise ValueError(f"role must be one of {sorted(CHAT_ROLES)}, got {self.role!r}")


@dataclass(frozen=True)
class ChatResult:
    """The assistant's reply. ``response_id`` is the upstream server's id when there is one."""

    model: str
    content: str
    finish_reason: FinishReason
    usage: Usage
    response_id: str | None = None
