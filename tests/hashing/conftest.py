from collections.abc import Iterator

import pytest

from stratumkit import hashing


@pytest.fixture(params=["portable", "shani"])
def impl(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test once per compression implementation, then restore automatic selection."""
    if request.param not in hashing.available_implementations():
        pytest.skip(f"this CPU cannot run the {request.param} SHA-256 path")
    hashing.use_implementation(request.param)
    try:
        yield request.param
    finally:
        hashing.use_implementation("auto")
