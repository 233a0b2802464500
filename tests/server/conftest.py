"""The pool fixtures of tests/pool: a real pool on loopback, port 0, per test."""

from tests.pool.conftest import make_pool, pool

__all__ = ["make_pool", "pool"]
