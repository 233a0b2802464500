"""The rig's own inference server under the agent (`--inference-cmd`): vLLM, llama.cpp's server,
Ollama or `stratumkit infer serve`, started on divert and stopped on return.

Rules:
- Not running while the rig mines, unless ``keep_warm`` (then it starts with the agent and stays).
- Ready means the agent's backend can list the server's models (``GET /v1/models``) and, when
  ``model`` is set, that model is among them; it is polled every ``POLL_S`` up to
  ``ready_timeout`` s. Not ready by then: the process is restarted and the wait goes on (the
  agent's backoff decides how often), reported each time; serving is only said once ready.
- A server that dies is restarted by its SupervisedProcess while it is wanted.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from stratumkit.inference.backend import InferenceBackend
from stratumkit.inference.errors import BackendUnavailableError, InferenceError

from .child_process import StopMethod, SupervisedProcess, command_argv

#: Seconds between readiness polls of a server that is starting.
POLL_S = 0.25


@dataclass(frozen=True)
class InferenceServerSettings:
    command: str
    model: str | None = None
    ready_timeout: float = 120.0
    keep_warm: bool = False
    log_lines: int = 200


class InferenceServer:
    def __init__(self, settings: InferenceServerSettings) -> None:
        self.settings = settings
        self.process = SupervisedProcess(
            command_argv(settings.command, {}),
            StopMethod.STOP,
            name="inference server",
            running=settings.keep_warm,
            log_lines=settings.log_lines,
        )

    async def run(self) -> None:
        """For the agent's whole life: the process, whenever it is wanted."""
        await self.process.run()

    async def ready(self, backend: InferenceBackend) -> None:
        """Start the server (if it is not running) and wait until the backend sees it ready;
        BackendUnavailableError (after restarting it) if it is not within ``ready_timeout``."""
        self.process.resume()
        model = self.settings.model
        last = "no answer yet"
        with trio.move_on_after(self.settings.ready_timeout):
            while True:
                try:
                    await backend.wake()
                    if model is None or model in backend.models():
                        return
                    last = f"model {model!r} not listed yet (listed: {', '.join(backend.models()) or 'none'})"
                except InferenceError as exc:
                    last = str(exc)
                await trio.sleep(POLL_S)
        self.process.pause()
        self.process.resume()
        raise BackendUnavailableError(
            f"the inference server was not ready within {self.settings.ready_timeout:g} s ({last}): restarted"
        )

    def done(self) -> None:
        """The lease is over: stop the server unless it is kept warm."""
        if not self.settings.keep_warm:
            self.process.pause()
