"""Run asyncio coroutines (httpx needs an asyncio Task) from pytest-twisted tests.

@pytest_twisted.ensureDeferred
async def test_something():
    result = await aio(adapter.send([...]))
"""

from smppgw.aio import as_deferred as aio

__all__ = ["aio"]
