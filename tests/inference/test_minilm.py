"""all-MiniLM-L6-v2 (int8 ONNX) run in-process: real vectors from a real tokenizer."""

from __future__ import annotations

import math
import socket

import numpy as np
import pytest
import trio
import trio.testing

from stratumkit.inference import (
    ChatMessage,
    InferenceBackend,
    UnknownModelError,
    UnsupportedError,
    run_job,
)
from stratumkit.inference.minilm import DIMENSIONS, MAX_TOKENS, MODEL_ID, MiniLMBackend

CAT = "a cat sits on the mat"
KITTEN = "a kitten is sitting on a rug"
UNRELATED = "quarterly interest rates were raised by the central bank"


def _cos(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_is_an_inference_backend(minilm: MiniLMBackend) -> None:
    assert isinstance(minilm, InferenceBackend)
    assert minilm.models() == [MODEL_ID]


async def test_vectors_are_unit_384d_and_semantic(minilm: MiniLMBackend) -> None:
    assert await minilm.ready()
    result = await minilm.embed(MODEL_ID, [CAT, KITTEN, UNRELATED])
    assert result.model == MODEL_ID
    assert result.dimensions == DIMENSIONS
    for vector in result.vectors:
        assert len(vector) == DIMENSIONS
        assert math.sqrt(sum(x * x for x in vector)) == pytest.approx(1.0, abs=1e-5)
    cat, kitten, unrelated = result.vectors
    similar, different = _cos(cat, kitten), _cos(cat, unrelated)
    assert similar > different
    # Paraphrases land close, unrelated text near orthogonal: the model is really running.
    assert similar > 0.5
    assert different < 0.3


async def test_deterministic_and_batch_independent(minilm: MiniLMBackend) -> None:
    first = await minilm.embed(MODEL_ID, [CAT, KITTEN, UNRELATED])
    second = await minilm.embed(MODEL_ID, [CAT, KITTEN, UNRELATED])
    assert first == second
    # Padding to the longest input in a batch must not change a vector.
    for text, batched in zip([CAT, KITTEN, UNRELATED], first.vectors, strict=True):
        (alone,) = (await minilm.embed(MODEL_ID, [text])).vectors
        np.testing.assert_allclose(alone, batched, atol=1e-5)


async def test_tokenizer_is_bert_uncased_wordpiece(minilm: MiniLMBackend) -> None:
    # [CLS] a cat sits on the mat [SEP]: 8 tokens.
    assert (await minilm.embed(MODEL_ID, [CAT])).usage.prompt_tokens == 8
    # A rare word splits into WordPiece pieces: [CLS] una ##ffa ##ble [SEP].
    assert (await minilm.embed(MODEL_ID, ["unaffable"])).usage.prompt_tokens == 5
    # Uncased: the normaliser lowercases before lookup.
    upper, lower = (await minilm.embed(MODEL_ID, [CAT.upper(), CAT])).vectors
    assert upper == lower


async def test_long_input_is_truncated(minilm: MiniLMBackend) -> None:
    long_text = " ".join(["word"] * 1000)
    result = await minilm.embed(MODEL_ID, [long_text, CAT])
    assert result.usage.prompt_tokens == MAX_TOKENS + 8
    assert len(result.vectors[0]) == DIMENSIONS


async def test_unknown_model_and_chat(minilm: MiniLMBackend) -> None:
    with pytest.raises(UnknownModelError, match="'all-MiniLM-L6-v2'"):
        await minilm.embed("text-embedding-3-small", [CAT])
    with pytest.raises(UnsupportedError, match="does not support chat") as info:
        await minilm.chat(MODEL_ID, [ChatMessage("user", "hi")], 10)
    assert info.value.http_status == 400
    assert not info.value.retryable


async def test_run_job_embeddings(minilm: MiniLMBackend) -> None:
    out = await run_job(minilm, {"kind": "embeddings", "model": MODEL_ID, "input": [CAT, KITTEN]})
    direct = await minilm.embed(MODEL_ID, [CAT, KITTEN])
    assert out["object"] == "list"
    assert out["model"] == MODEL_ID
    assert [d["embedding"] for d in out["data"]] == [list(v) for v in direct.vectors]
    assert all(type(x) is float for x in out["data"][0]["embedding"])
    assert out["usage"]["prompt_tokens"] == direct.usage.prompt_tokens


async def test_fresh_load_offline_and_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading and running need no network, and each forward pass waits on the backend's
    thread limiter (so it runs in a worker thread, never on the event loop)."""

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    limiter = trio.CapacityLimiter(1)
    backend = MiniLMBackend(threads=1, limiter=limiter)
    assert not await backend.ready()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(backend.start)
        nursery.start_soon(backend.start)  # concurrent starts load once
    assert await backend.ready()

    results = []

    async def embed() -> None:
        results.append(await backend.embed(MODEL_ID, [CAT]))

    async with trio.open_nursery() as nursery:
        await limiter.acquire()
        nursery.start_soon(embed)
        await trio.testing.wait_all_tasks_blocked()
        assert results == []  # parked on the limiter while the loop runs on
        limiter.release()
    assert len(results[0].vectors[0]) == DIMENSIONS

    await backend.close()
    assert not await backend.ready()
    # embed() starts a closed backend again.
    again = await backend.embed(MODEL_ID, [CAT])
    assert again.vectors == results[0].vectors
