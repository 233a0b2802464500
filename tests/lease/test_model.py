"""Lease values: validation at the edge, selector matching, capability parsing."""

from __future__ import annotations

import math

import pytest

from stratumkit.lease import (
    GPU,
    BadCapabilities,
    BadLeaseSpec,
    BadSelector,
    BadValue,
    LeaseError,
    LeaseSpec,
    LeaseState,
    Rig,
    RigCapabilities,
    Selector,
)
from stratumkit.lease.model import MAX_LEASE_S


def caps(*gpus: tuple[str, int], models: tuple[str, ...] = ("llama-3-8b",)) -> RigCapabilities:
    return RigCapabilities(gpus=tuple(GPU(m, v) for m, v in gpus), models=models, hashrate=1e9, power_w=300.0)


class TestValidation:
    @pytest.mark.parametrize(
        "kwargs",
        [
            {"count": 0},
            {"count": -1},
            {"count": True},
            {"count": 1.0},
            {"count": 2, "min_count": 3},
            {"count": 2, "min_count": -1},
            {"count": 1, "min_vram_mb": -1},
            {"count": 1, "gpu_model": ""},
            {"count": 1, "gpu_model": "   "},
            {"count": 1, "model": ""},
        ],
    )
    def test_bad_selector(self, kwargs: dict[str, object]) -> None:
        with pytest.raises(BadSelector):
            Selector(**kwargs)  # type: ignore[arg-type]

    def test_selector_errors_are_lease_and_value_errors(self) -> None:
        with pytest.raises(LeaseError):
            Selector(0)
        with pytest.raises(ValueError, match="count"):
            Selector(0)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"queue": "", "duration_s": 10},
            {"queue": "q", "duration_s": 0},
            {"queue": "q", "duration_s": -5},
            {"queue": "q", "duration_s": math.inf},
            {"queue": "q", "duration_s": math.nan},
            {"queue": "q", "duration_s": MAX_LEASE_S + 1},
            {"queue": "q", "duration_s": "10"},
            {"queue": "q", "duration_s": 10, "priority": 1.5},
            {"queue": "q", "duration_s": 10, "owner": 7},
        ],
    )
    def test_bad_spec(self, kwargs: dict[str, object]) -> None:
        with pytest.raises(BadLeaseSpec):
            LeaseSpec(selector=Selector(1), **kwargs)  # type: ignore[arg-type]

    def test_spec_needs_a_selector(self) -> None:
        with pytest.raises(BadLeaseSpec, match="selector"):
            LeaseSpec(selector=1, queue="q", duration_s=1)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "build",
        [
            lambda: GPU("", 1024),
            lambda: GPU("A100", -1),
            lambda: RigCapabilities((), ("m",), 1.0, 1.0),
            lambda: RigCapabilities((GPU("A100", 1),), ("m",), -1.0, 1.0),
            lambda: RigCapabilities((GPU("A100", 1),), ("m",), math.nan, 1.0),
            lambda: RigCapabilities((GPU("A100", 1),), ("m",), 1.0, math.inf),
            lambda: RigCapabilities((GPU("A100", 1),), ("",), 1.0, 1.0),
            lambda: RigCapabilities(("A100",), ("m",), 1.0, 1.0),  # type: ignore[arg-type]
            lambda: RigCapabilities((GPU("A100", 1),), "m", 1.0, 1.0),  # type: ignore[arg-type]
        ],
    )
    def test_bad_capabilities(self, build: object) -> None:
        with pytest.raises(BadCapabilities):
            build()  # type: ignore[operator]

    def test_lists_become_tuples(self) -> None:
        c = RigCapabilities([GPU("A100", 1)], ["m"], 1, 2)  # type: ignore[arg-type]
        assert c.gpus == (GPU("A100", 1),)
        assert c.models == ("m",)
        assert isinstance(c.hashrate, float)
        hash(c)  # frozen values stay hashable

    def test_rig_binds_lease_and_token_together(self) -> None:
        with pytest.raises(BadValue):
            Rig("r", "w", caps(("A100", 1)), connected=True, lease_id="l", token=None)
        with pytest.raises(BadValue):
            Rig("", "w", caps(("A100", 1)), connected=True)

    def test_states(self) -> None:
        assert {s for s in LeaseState if s.is_terminal} == {
            LeaseState.DONE,
            LeaseState.FAILED,
            LeaseState.EXPIRED,
            LeaseState.CANCELLED,
        }
        assert {s for s in LeaseState if s.is_live} == {
            LeaseState.REQUESTED,
            LeaseState.DRAINING,
            LeaseState.SERVING,
        }


class TestSelectorMatching:
    def test_gpu_model_is_case_and_space_insensitive(self) -> None:
        rig = caps(("NVIDIA GeForce  RTX 4090", 24576))
        assert Selector(1, gpu_model="nvidia geforce rtx 4090").matches(rig)
        assert not Selector(1, gpu_model="RTX 4090").matches(rig)

    def test_min_vram_on_any_gpu(self) -> None:
        rig = caps(("RTX 3070", 8192), ("RTX 3090", 24576))
        assert Selector(1, min_vram_mb=16384).matches(rig)
        assert Selector(1, min_vram_mb=24576).matches(rig)
        assert not Selector(1, min_vram_mb=24577).matches(rig)

    def test_one_gpu_must_meet_model_and_vram_together(self) -> None:
        rig = caps(("RTX 3070", 8192), ("RTX 3090", 24576))
        assert Selector(1, gpu_model="RTX 3090", min_vram_mb=16384).matches(rig)
        # the 3070 has the model, the 3090 the VRAM: no single GPU qualifies
        assert not Selector(1, gpu_model="RTX 3070", min_vram_mb=16384).matches(rig)

    def test_served_model(self) -> None:
        rig = caps(("A100", 81920), models=("llama-3-8b", "mistral-7b"))
        assert Selector(1, model="mistral-7b").matches(rig)
        assert not Selector(1, model="mixtral-8x7b").matches(rig)
        assert Selector(1).matches(rig)

    def test_required(self) -> None:
        assert Selector(3).required == 3
        assert Selector(3, min_count=1).required == 1
        assert Selector(3, min_count=0).required == 0


class TestCapabilitiesData:
    def test_round_trip(self) -> None:
        c = caps(("RTX 3070", 8192), ("RTX 3090", 24576), models=("a", "b"))
        assert RigCapabilities.from_dict(c.to_dict()) == c

    @pytest.mark.parametrize(
        "data",
        [
            {},
            {"gpus": [], "hashrate": 1, "power_w": 1},
            {"gpus": [{"model": "A100"}], "hashrate": 1, "power_w": 1},
            {"gpus": ["A100"], "hashrate": 1, "power_w": 1},
            {"gpus": [{"model": "A100", "vram_mb": "lots"}], "hashrate": 1, "power_w": 1},
            {"gpus": [{"model": "A100", "vram_mb": 1}], "hashrate": None, "power_w": 1},
            {"gpus": "A100", "hashrate": 1, "power_w": 1},
            [1, 2],
        ],
    )
    def test_malformed_data_raises_bad_capabilities_only(self, data: object) -> None:
        with pytest.raises(BadCapabilities):
            RigCapabilities.from_dict(data)  # type: ignore[arg-type]
