"""The environment a worker task runs in, for tests that call it in-process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.settings import Settings, get_settings
from core.store.db import migrate


@pytest.fixture
def worker_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The worker's settings on this test's data dir (a migrated store), without the
    system-metrics sampler."""
    monkeypatch.setenv("NEUROREG_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("NEUROREG_SYSTEM_METRICS_S", "0")
    get_settings.cache_clear()
    migrate(settings.db_url)
    yield get_settings()
    get_settings.cache_clear()
