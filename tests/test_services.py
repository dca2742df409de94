"""The suite touches only the databases it creates or is told to use (tests/conftest.py):
a Redis server it started itself, and a PostgreSQL database of its own."""

from __future__ import annotations

import os

import psutil
import pytest
import redis
from sqlalchemy import create_engine, text

from tests.conftest import PG_ADMIN_URL


@pytest.mark.skipif(bool(os.environ.get("NEUROREG_TEST_REDIS")),
                    reason="NEUROREG_TEST_REDIS names the Redis database to use")
def test_the_suites_redis_is_a_server_this_session_started(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        pid = int(client.info("server")["process_id"])
    finally:
        client.close()
    assert psutil.Process(pid).ppid() == os.getpid()
    assert ":6379/" not in redis_url


def test_the_suites_postgresql_database_is_one_it_created(pg_url: str) -> None:
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            name = conn.execute(text("SELECT current_database()")).scalar_one()
    finally:
        engine.dispose()
    assert name.startswith("neuroreg_test_")
    assert name != PG_ADMIN_URL.rsplit("/", 1)[1]
