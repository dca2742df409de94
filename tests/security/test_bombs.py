"""Decompression bombs and damaged files in what the API opens for a view: a member's
external run holds a ``target-*.npz`` the matrices view reads. The view refuses from the
arrays' headers what would exceed NEUROREG_MAX_VIEW_BYTES, answers a damaged file with a
422 naming the artifact, and holds at most that budget in its cache."""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from ml.neural.target import SimilarityTarget
from tests.conftest import admin_client
from tests.ml.test_stored import bomb
from tests.security.conftest import as_token

NAME = "target-neural-model.npz"


@pytest.fixture
def small_budget(backend: Settings) -> Settings:
    return backend.model_copy(update={"max_view_bytes": 16 << 20})


def _target(n: int, d: int = 8) -> bytes:
    rng = np.random.default_rng(0)
    f = rng.standard_normal((n, d)).astype(np.float32)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    return SimilarityTarget("neural-model", f, np.arange(n),
                            rng.random((n, 1, 36, 64), dtype=np.float32)).to_bytes()


def _external_run_with(client: TestClient, raw: bytes) -> int:
    rid: int = client.post("/api/runs", json={"kind": "external",
                                              "config": {"params": {}}}).json()["id"]
    assert client.put(f"/api/runs/{rid}/artifacts/{NAME}", content=raw).status_code == 201
    return rid


def test_a_bomb_is_refused_without_allocating_it(small_budget: Settings) -> None:
    """The finding: a 0.5 MiB target of deflated zeros made the API allocate about 1 GiB."""
    raw = bomb((8192, 8192))  # 256 MiB of float32 claimed, about 0.25 MiB stored
    with admin_client(small_budget) as api:
        eve = as_token(api, api.post("/api/users", json={"name": "eve"}).json()["token"])
        rid = _external_run_with(eve, raw)
        assert eve.get(f"/api/runs/{rid}/matrices").json() == ["neural-model"]
        tracemalloc.start()
        try:
            for path in ("neural-model", "neural-model/pairs"):
                res = eve.get(f"/api/runs/{rid}/matrices/{path}")
                assert res.status_code == 422, res.text
                assert res.json()["detail"].startswith(f"run {rid}'s {NAME}: its arrays take "
                                                       "268,435,456 bytes")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 32 << 20


@pytest.mark.parametrize("raw", [b"not a zip", _target(50)[:2000], bomb((10,), dtype="|O"),
                                 bomb((50, 8), written=100)],
                         ids=["garbage", "truncated", "object-array", "short-member"])
def test_a_damaged_target_is_a_422_naming_it(
        member: Callable[[str], TestClient], raw: bytes) -> None:
    eve = member("eve")
    rid = _external_run_with(eve, raw)
    res = eve.get(f"/api/runs/{rid}/matrices/neural-model")
    assert res.status_code == 422, res.text
    assert res.json()["detail"].startswith(f"run {rid}'s {NAME}: ")


def test_a_file_that_is_not_a_target_is_a_422(member: Callable[[str], TestClient]) -> None:
    buf = io.BytesIO()
    np.savez(buf, factor=np.zeros((4, 2)))  # an npz, but no images, ids or meta
    eve = member("eve")
    rid = _external_run_with(eve, buf.getvalue())
    res = eve.get(f"/api/runs/{rid}/matrices/neural-model")
    assert res.status_code == 422 and "not a neuroreg-target/1 file" in res.json()["detail"]


def test_views_hold_at_most_the_budget(small_budget: Settings) -> None:
    """Three 7 MiB targets under a 16 MiB budget: each views, and at most two are held."""
    from server.routes import matrices

    with admin_client(small_budget) as api:
        runs = [_external_run_with(api, _target(800)) for _ in range(3)]
        for rid in runs:
            res = api.get(f"/api/runs/{rid}/matrices/neural-model", params={"size": 20})
            assert res.status_code == 200 and res.json()["n"] == 800
        held = matrices._held.sizes()
        assert sum(held) <= 16 << 20 and len(held) == 2
