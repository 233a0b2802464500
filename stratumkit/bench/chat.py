"""`python -m stratumkit.bench.chat`: SmolLM2-135M-Instruct's speed on this machine's CPU, in
process (no HTTP): the load time, then per request the prompt and completion tokens and the
completion tokens per second of wall time (prompt evaluation included), greedy decoding."""

from __future__ import annotations

import argparse
import statistics

import trio

from stratumkit.inference import ChatMessage
from stratumkit.inference.smollm2 import MODEL_ID, SmolLM2Backend, default_model_path

PROMPTS = [
    "What is the capital of France?",
    "Write one sentence about mining pools.",
    "List three colours.",
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stratumkit.bench.chat", description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="times through the prompts")
    args = parser.parse_args(argv)

    async def run() -> None:
        backend = SmolLM2Backend(threads=args.threads)
        path = default_model_path()
        started = trio.current_time()
        await backend.start()
        print(
            f"{MODEL_ID}: {path.name}, {path.stat().st_size / 1e6:.1f} MB, "
            f"loaded in {trio.current_time() - started:.2f} s"
        )
        rates = []
        for _ in range(args.rounds):
            for prompt in PROMPTS:
                t0 = trio.current_time()
                reply = await backend.chat(MODEL_ID, [ChatMessage("user", prompt)], args.max_tokens)
                elapsed = trio.current_time() - t0
                rates.append(reply.usage.completion_tokens / elapsed)
                print(f"prompt {reply.usage.prompt_tokens:3d} tok, completion {reply.usage.completion_tokens:3d} tok, "
                      f"{elapsed:5.2f} s, {rates[-1]:5.1f} tok/s: {reply.content[:60]!r}")  # fmt: skip
        print(f"threads {args.threads}: median {statistics.median(rates):.1f} tok/s, min {min(rates):.1f}, "
              f"max {max(rates):.1f} over {len(rates)} requests")  # fmt: skip
        await backend.close()

    trio.run(run)


if __name__ == "__main__":
    main()
