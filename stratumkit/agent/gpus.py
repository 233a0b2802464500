"""GPU facts from ``nvidia-smi``, where the rig has it; the declared ``--gpu`` list otherwise.

``nvidia-smi --query-gpu=name,memory.total,power.draw --format=csv`` prints a header naming each
column with its unit in brackets, then one line per GPU, values with their units::

    name, memory.total [MiB], power.draw [W]
    NVIDIA GeForce RTX 4090, 24564 MiB, 31.27 W

A GPU that cannot report its draw says ``[N/A]`` (or ``[Not Supported]``) there: its power is
None. The parser finds columns by the header, so their order does not matter; an output it cannot
read is a ValueError naming the line, and the agent then falls back to what was declared.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

import structlog
import trio

log = structlog.get_logger("stratumkit.agent")

QUERY = ("--query-gpu=name,memory.total,power.draw", "--format=csv")
_UNITS = {"MiB": 1.0, "GiB": 1024.0, "KiB": 1 / 1024}


@dataclass(frozen=True, slots=True)
class GpuFact:
    model: str
    vram_mb: int
    power_w: float | None  # None: the GPU does not report it


def _number(value: str, units: dict[str, float], where: str) -> float | None:
    value = value.strip()
    if value.startswith("[") and value.endswith("]"):  # [N/A], [Not Supported], [Unknown Error]
        return None
    number, _, unit = value.partition(" ")
    try:
        return float(number) * units.get(unit, 1.0)
    except ValueError:
        raise ValueError(f"nvidia-smi: {where}: not a number: {value!r}") from None


def parse_nvidia_smi_csv(text: str) -> list[GpuFact]:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    header = [name.strip().partition(" [")[0] for name in lines[0].split(",")]
    try:
        name_at, memory_at, power_at = (header.index(k) for k in ("name", "memory.total", "power.draw"))
    except ValueError:
        raise ValueError(f"nvidia-smi: unexpected header {lines[0]!r}") from None
    gpus = []
    for number, line in enumerate(lines[1:], 2):
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != len(header):
            raise ValueError(f"nvidia-smi: line {number} has {len(fields)} fields, the header {len(header)}: {line!r}")
        memory = _number(fields[memory_at], _UNITS, f"line {number} memory.total")
        if memory is None:
            raise ValueError(f"nvidia-smi: line {number}: no memory.total: {line!r}")
        gpus.append(GpuFact(fields[name_at], int(memory), _number(fields[power_at], {"W": 1.0}, f"line {number}")))
    return gpus


async def detect_gpus(executable: str = "nvidia-smi", timeout: float = 10.0) -> list[GpuFact] | None:
    """The rig's GPUs per nvidia-smi, or None when it is absent or fails (said in the log)."""
    path = shutil.which(executable)
    if path is None:
        return None
    try:
        with trio.fail_after(timeout):
            done = await trio.run_process([path, *QUERY], capture_stdout=True, stderr=subprocess.DEVNULL, check=False)
        if done.returncode != 0:
            raise ValueError(f"nvidia-smi exited with {done.returncode}")
        return parse_nvidia_smi_csv(done.stdout.decode(errors="replace"))
    except (OSError, ValueError, trio.TooSlowError) as exc:
        log.warning("GPU detection failed: using the declared --gpu", error=str(exc) or "timed out")
        return None


async def total_power(executable: str = "nvidia-smi") -> float | None:
    """The rig's GPU draw now, in watts (None: no tool, or a GPU that does not report it)."""
    gpus = await detect_gpus(executable)
    if not gpus or any(g.power_w is None for g in gpus):
        return None
    return sum(g.power_w for g in gpus if g.power_w is not None)
