"""Inference backends for leased rigs: the interface, the job runner, and the errors.

The implementations live in their own modules so that importing this package pulls in no
HTTP client and no model runtime:

* :mod:`.openai_http` -- OpenAIHTTPBackend, a client of vLLM / llama.cpp / Ollama (httpx);
* :mod:`.minilm` -- MiniLMBackend, all-MiniLM-L6-v2 on the CPU (onnxruntime, tokenizers);
* :mod:`.server` -- serve_openai / run_server, an OpenAI-compatible endpoint (hypercorn).
"""

from .backend import (
    CHAT,
    EMBEDDINGS,
    JOB_KINDS,
    InferenceBackend,
    handle_request,
    run_job,
)
from .errors import (
    BackendUnavailableError,
    InferenceError,
    InvalidRequestError,
    UnknownModelError,
    UnsupportedError,
    UpstreamError,
)
from .values import ChatMessage, ChatResult, EmbeddingResult, Usage

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
