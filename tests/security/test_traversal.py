"""Path traversal (MLflow's CVE-2023-1177, -2356, -6015 class): in artifact names, and in
the sources a run's config names (recordings, networks), every name stays inside its
root — written out, URL-encoded, absolute, or through a symlink."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.settings import Settings

NAMES = ["..", ".", "...", "a..b", "..%2fsecret", "%2e%2e", "%2e%2e%2fsecret", "..%5csecret",
         "a%00b", "%2fetc%2fpasswd", ".hidden", "a%0a", "x" * 256]


@pytest.mark.parametrize("name", NAMES)
def test_artifact_names_cannot_leave_their_run(
        member: Callable[[str], TestClient], backend: Settings, name: str) -> None:
    eve = member("eve")
    mine = eve.post("/api/runs", json={"kind": "external", "config": {"params": {}}}).json()
    res = eve.put(f"/api/runs/{mine['id']}/artifacts/{name}", content=b"planted")
    # 404/422 from the artifact route; 405 where the client resolved ".." out of the path
    assert res.status_code in (404, 405, 422), (name, res.status_code)
    assert eve.get(f"/api/runs/{mine['id']}/artifacts").json() == []
    assert b"planted" not in eve.get(f"/api/runs/{mine['id']}/artifacts/{name}").content
    planted = [p for p in backend.data_dir.rglob("*") if p.is_file()
               and p.read_bytes() == b"planted"]
    assert planted == []


def _config(field: str, value: str) -> dict[str, Any]:
    if field == "config.recording":
        return {"kind": "similarity", "config": {"source": "recording", "recording": value}}
    return {"kind": "train", "config": {"target": "cnn-features", "target_run": 1,
                                        "features": {"weights": value, "layer": "conv3_1"}}}


@pytest.mark.parametrize("field", ["config.recording", "config.features.weights"])
@pytest.mark.parametrize("value", ["../neuroreg.db", "/etc/passwd", "a/../../neuroreg.db",
                                   "link-out", "."])
def test_a_config_names_only_files_under_its_root(
        member: Callable[[str], TestClient], backend: Settings, field: str,
        value: str) -> None:
    """``link-out`` is a symlink an admin left in the root, pointing out of it."""
    for root in (backend.recordings, backend.models):
        root.mkdir(parents=True, exist_ok=True)
        if not (root / "link-out").exists():
            (root / "link-out").symlink_to(backend.data_dir)
    eve = member("eve")
    res = eve.post("/api/runs", json=_config(field, value))
    assert res.status_code in (404, 422), res.text
    if res.status_code == 404 and field == "config.recording":
        assert field in str(res.json()["detail"]), res.json()
    assert eve.get("/api/runs").json()["total"] == 0
