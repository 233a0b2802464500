"""The test suite as one package (tests.<dir>), so that pytest and mypy name every module uniquely."""
