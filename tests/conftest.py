import os

import pytest

from smppgw.redisd import RedisClusterServers
from tests.redisd import RedisServer, prefix


@pytest.fixture
def tmp_db(tmp_path):
    return tmp_path / "gateway.db"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """The run's Redis: the one ./scripts/test started (SMPPGW_TEST_REDIS), or one of our own."""
    url = os.environ.get("SMPPGW_TEST_REDIS")
    if url:
        yield url
        return
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture
def redis_store_config(redis_server):
    """[store] settings for a Redis store of this test's own (its own key prefix)."""
    return {"type": "redis", "url": redis_server, "key_prefix": prefix(), "claim_after": 3}


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    """The run's Redis Cluster: three primaries of Debian's redis-server on loopback joined by
    `redis-cli --cluster create` (SMPPGW_TEST_REDIS_CLUSTER: one already running)."""
    url = os.environ.get("SMPPGW_TEST_REDIS_CLUSTER")
    if url:
        yield url
        return
    cluster = RedisClusterServers(tmp_path_factory.mktemp("cluster")).start()
    yield cluster.url
    cluster.stop()


@pytest.fixture(params=["redis", "cluster"])
def shared_store(request):
    """[store] settings of a test's own key prefix, on one Redis and on a Redis Cluster."""
    url = request.getfixturevalue("redis_server" if request.param == "redis" else "redis_cluster")
    return {"type": "redis", "url": url, "key_prefix": prefix(), "claim_after": 3}
