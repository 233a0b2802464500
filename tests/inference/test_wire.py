"""The OpenAI shapes (sans-I/O) and run_job's payload handling."""

from __future__ import annotations

import base64
import struct

import msgpack
import pytest

from stratumkit.inference import (
    ChatMessage,
    ChatResult,
    EmbeddingResult,
    InvalidRequestError,
    Usage,
    run_job,
)
from stratumkit.inference.wire import (
    MAX_EMBEDDING_INPUTS,
    EmbeddingsRequest,
    chat_response,
    embeddings_response,
    parse_chat_request,
    parse_embeddings_request,
)

from .doubles import EchoChatBackend


def test_embeddings_input_string_or_list() -> None:
    assert parse_embeddings_request({"model": "m", "input": "hi"}).inputs == ("hi",)
    req = parse_embeddings_request({"model": "m", "input": ["a", "b"], "user": "u"})
    assert req.inputs == ("a", "b")
    assert req.encoding_format == "float"


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ([], None, "must be a JSON object"),
        ({"input": "x"}, "model", "missing required field 'model'"),
        ({"model": "", "input": "x"}, "model", "non-empty string"),
        ({"model": "m"}, "input", "missing required field 'input'"),
        ({"model": "m", "input": []}, "input", "empty list"),
        ({"model": "m", "input": [101, 2003]}, "input", "token-id input is not supported"),
        ({"model": "m", "input": {"a": 1}}, "input", "got dict"),
        ({"model": "m", "input": "x", "encoding_format": "int8"}, "encoding_format", "'int8'"),
        ({"model": "m", "input": "x", "dimensions": True}, "dimensions", "integer"),
        ({"model": "m", "input": "x", "dimensions": 0}, "dimensions", ">= 1"),
        ({"model": "m", "input": "x", "temperature": 1}, "temperature", "unrecognized field"),
    ],
)
def test_embeddings_rejects(body: object, param: str | None, fragment: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        parse_embeddings_request(body)
    assert fragment in str(info.value)
    assert info.value.param == param
    assert info.value.http_status == 400
    assert not info.value.retryable


def test_embeddings_input_count_limit() -> None:
    parse_embeddings_request({"model": "m", "input": ["x"] * MAX_EMBEDDING_INPUTS})
    with pytest.raises(InvalidRequestError, match=f"at most {MAX_EMBEDDING_INPUTS}"):
        parse_embeddings_request({"model": "m", "input": ["x"] * (MAX_EMBEDDING_INPUTS + 1)})


def test_embeddings_response_float_and_base64() -> None:
    vectors = ((0.5, -0.25, 1.0), (0.1, 0.2, 0.3))
    result = EmbeddingResult("m", vectors, Usage(7))
    as_float = embeddings_response(EmbeddingsRequest("m", ("a", "b")), result)
    assert [d["embedding"] for d in as_float["data"]] == [list(v) for v in vectors]
    assert [d["index"] for d in as_float["data"]] == [0, 1]
    assert as_float["usage"] == {"prompt_tokens": 7, "total_tokens": 7}

    as_b64 = embeddings_response(EmbeddingsRequest("m", ("a", "b"), "base64"), result)
    for item, vector in zip(as_b64["data"], vectors, strict=True):
        decoded = struct.unpack("<3f", base64.b64decode(item["embedding"]))
        assert decoded == pytest.approx(vector, abs=1e-7)
    # Both shapes go through msgpack unchanged (what the job queue stores).
    for body in (as_float, as_b64):
        assert msgpack.unpackb(msgpack.packb(body)) == body


def test_embeddings_response_checks_dimensions_and_count() -> None:
    result = EmbeddingResult("m", ((1.0, 0.0),), Usage(1))
    with pytest.raises(InvalidRequestError, match="returns 2-dimensional vectors"):
        embeddings_response(EmbeddingsRequest("m", ("a",), dimensions=3), result)
    embeddings_response(EmbeddingsRequest("m", ("a",), dimensions=2), result)
    with pytest.raises(Exception, match="1 vectors for 2 inputs"):
        embeddings_response(EmbeddingsRequest("m", ("a", "b")), result)


def test_chat_request_parsing() -> None:
    req = parse_chat_request(
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                },
            ],
            "max_tokens": 5,
            "max_completion_tokens": 9,
            "stop": "\n",
            "temperature": 0,
            "n": 1,
            "stream": False,
        }
    )
    assert req.messages == (ChatMessage("system", "be brief"), ChatMessage("user", "a\nb"))
    assert req.max_tokens == 9  # the newer field wins
    assert req.stop == ("\n",)
    assert req.temperature == 0.0


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"messages": []}, "non-empty list"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": None}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "only text"),
        ({"stream": True}, "streaming"),
        ({"n": 2}, "n=1"),
        ({"max_tokens": 0}, "'max_tokens' must be >= 1"),
        ({"temperature": 3}, "between 0 and 2"),
        ({"stop": [1]}, "'stop'"),
        ({"functions": []}, "unrecognized field"),
    ],
)
def test_chat_request_rejects(change: dict[str, object], fragment: str) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **change}
    with pytest.raises(InvalidRequestError) as info:
        parse_chat_request(body)
    assert fragment in str(info.value)


def test_chat_response_shape() -> None:
    body = chat_response(ChatResult("m", "hello", "length", Usage(3, 2)), response_id="chatcmpl-1", created=1700)
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hello"},
            "finish_reason": "length",
        }
    ]
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert (body["id"], body["created"], body["object"]) == ("chatcmpl-1", 1700, "chat.completion")


async def test_run_job_chat_on_a_backend() -> None:
    backend = EchoChatBackend()
    payload = {
        "kind": "chat.completions",
        "model": "echo-1",
        "messages": [{"role": "user", "content": "one two three"}],
        "max_tokens": 2,
    }
    out = await run_job(backend, payload, now=1234.9)
    assert out["choices"][0]["message"]["content"] == "three two"
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["created"] == 1234
    assert out["id"].startswith("chatcmpl-")
    assert out["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert msgpack.unpackb(msgpack.packb(out)) == out
    again = await run_job(backend, payload, now=1234.9)
    assert again["id"] != out["id"]


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"model": "echo-1", "input": "x"}, "no 'kind'"),
        (
            {"kind": "completions", "model": "echo-1", "prompt": "x"},
            "unknown job kind 'completions'",
        ),
        ("embeddings", "must be a mapping"),
    ],
)
async def test_run_job_rejects_bad_payloads(payload: object, fragment: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await run_job(EchoChatBackend(), payload)  # type: ignore[arg-type]
    assert fragment in str(info.value)
