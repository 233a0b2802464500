"""Fixtures of the two-front-end tests: a redis-server of the test's own."""

from tests.queue.conftest import private_redis_server

__all__ = ["private_redis_server"]
