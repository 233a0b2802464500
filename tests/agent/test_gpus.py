"""GPU detection: the nvidia-smi CSV parser pinned with recorded outputs, and the fallback.

The recorded outputs are in nvidia-smi's own format (header with units, values with units, two
spaces of padding where nvidia-smi pads, [N/A] where a GPU cannot report its draw). This machine
has no NVIDIA GPU, so the process path is exercised with an executable that replays a recording.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from stratumkit.agent.gpus import GpuFact, detect_gpus, parse_nvidia_smi_csv
from stratumkit.client import PoolClient
from tests.agent.conftest import MINILM, start_agent, start_pool

TWO_4090S = """name, memory.total [MiB], power.draw [W]
NVIDIA GeForce RTX 4090, 24564 MiB, 31.27 W
NVIDIA GeForce RTX 4090, 24564 MiB, 29.80 W
"""
GH200 = "name, memory.total [MiB], power.draw [W]\nNVIDIA GH200 120GB, 97871 MiB,  84.33 W\n"
LAPTOP_NO_POWER = (
    "name, memory.total [MiB], power.draw [W]\nNVIDIA GeForce GTX 1650 Ti with Max-Q Design, 4096 MiB, [N/A]\n"
)
REORDERED = "power.draw [W], name, memory.total [MiB]\n[Not Supported], Tesla T4, 15360 MiB\n"


@pytest.mark.parametrize(
    ("text", "gpus"),
    [
        (
            TWO_4090S,
            [GpuFact("NVIDIA GeForce RTX 4090", 24564, 31.27), GpuFact("NVIDIA GeForce RTX 4090", 24564, 29.8)],
        ),
        (GH200, [GpuFact("NVIDIA GH200 120GB", 97871, 84.33)]),
        (LAPTOP_NO_POWER, [GpuFact("NVIDIA GeForce GTX 1650 Ti with Max-Q Design", 4096, None)]),
        (REORDERED, [GpuFact("Tesla T4", 15360, None)]),
        ("", []),
    ],
)
def test_recorded_outputs_parse(text: str, gpus: list[GpuFact]) -> None:
    assert parse_nvidia_smi_csv(text) == gpus


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n", "unexpected header"),
        ("name, memory.total [MiB], power.draw [W]\nRTX, lots MiB, 3 W\n", "not a number"),
        ("name, memory.total [MiB], power.draw [W]\nRTX, 1 MiB\n", "line 2 has 2 fields"),
    ],
)
def test_outputs_it_cannot_read_say_where(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_nvidia_smi_csv(text)


def replay(folder: Path, output: str, code: int = 0) -> Path:
    """An executable that prints a recorded nvidia-smi output (this machine has no GPU)."""
    (folder / "recorded.csv").write_text(output)
    script = folder / "nvidia-smi"
    script.write_text(f'#!/bin/sh\ncat "{folder / "recorded.csv"}"\nexit {code}\n')
    script.chmod(0o755)
    return script


async def test_detection_runs_the_tool_and_falls_back_when_it_is_absent_or_fails(tmp_path: Path) -> None:
    assert await detect_gpus(str(replay(tmp_path, GH200))) == [GpuFact("NVIDIA GH200 120GB", 97871, 84.33)]
    assert await detect_gpus(str(tmp_path / "no-such-nvidia-smi")) is None
    failing = tmp_path / "failing"
    failing.mkdir()
    assert await detect_gpus(str(replay(failing, "NVIDIA-SMI has failed\n", code=9))) is None


@pytest.mark.slow
async def test_the_agent_registers_the_detected_gpus_and_reads_their_draw_per_mode(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    pool = await start_pool(nursery, tmp_path / "pool")
    tool = replay(tmp_path, TWO_4090S)
    agent = await start_agent(
        nursery, "--pool", f"127.0.0.1:{pool.port}", "--worker", "rig1.w", "--rig-id", "rig1",
        "--gpu", "RTX 3060:12288", "--nvidia-smi", str(tool), "--duty", "0.1",
        *MINILM,
    )  # fmt: skip
    detected = await agent.wait_event("GPUs detected", 60)
    assert detected["power_w"] == pytest.approx(61.07)
    await agent.wait_event("rig registered", 60)
    async with PoolClient(f"http://127.0.0.1:{await pool.api_port()}") as client:
        (rig,) = await client.rigs()
        assert rig["rig_id"] == "rig1" and "RTX 4090" in str(rig) and "RTX 3060" not in str(rig)
        # the draw is read again in each mode (the recording says the same in both)
        assert (await agent.wait_event("power", 30, where=lambda e: e["mode"] == "mining"))["watts"] == 61.07
        await client.create_lease(count=1, queue="embed", duration_s=600)
        assert (await agent.wait_event("power", 30, where=lambda e: e["mode"] == "serving"))["watts"] == 61.07
