"""The tests' redis-servers (smppgw/redisd.py) and a key prefix per test."""

from __future__ import annotations

import uuid

from smppgw.redisd import RedisServer, free_port

__all__ = ["RedisServer", "free_port", "prefix"]


def prefix() -> str:
    """A key prefix of a test's own, so tests share one Redis without seeing each other."""
    return f"t{uuid.uuid4().hex[:10]}:"
