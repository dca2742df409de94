"""Submitting similarity runs: nested configs, recordings under the server's root."""

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.settings import Settings


def _post(client: TestClient, config: dict) -> object:
    return client.post("/api/runs", json={"kind": "similarity", "config": config})


def test_simulated_similarity_run_is_queued_with_nested_defaults(
    client: TestClient, settings: Settings
) -> None:
    res = _post(client, {"simulation": {"n_scans": 2}, "predictor": {"max_epochs": 3}})
    assert res.status_code == 201, res.text
    run = res.json()
    assert run["kind"] == "similarity" and run["status"] == "queued"
    cfg = run["config"]
    assert cfg["simulation"]["n_scans"] == 2 and cfg["simulation"]["n_images"] == 5100
    assert cfg["predictor"]["max_epochs"] == 3 and cfg["predictor"]["readout"] == "gaussian"
    msg = next((settings.broker_dir / "queue").glob("*.msg")).read_bytes()
    assert b"neuroreg.similarity" in msg
    listed = client.get("/api/runs", params={"kind": "similarity"}).json()
    assert [r["id"] for r in listed["items"]] == [run["id"]]


@pytest.mark.parametrize(
    ("config", "loc"),
    [
        ({"simulation": {"n_scans": 0}}, ["body", "config", "simulation", "n_scans"]),
        ({"predictor": {"readout": "linear"}}, ["body", "config", "predictor", "readout"]),
        ({"source": "lab"}, ["body", "config", "source"]),
        ({"target_dtype": "int8"}, ["body", "config", "target_dtype"]),
        ({"source": "recording", "recording": "nope.npz"}, ["body", "config", "recording"]),
        ({"source": "recording", "recording": "../../etc/passwd"},
         ["body", "config", "recording"]),
        ({"importer": {"response_offset": -0.1}}, ["body", "config", "importer",
                                                  "response_offset"]),
        ({"importer": {"response_window": 0}}, ["body", "config", "importer",
                                               "response_window"]),
        ({"importer": {"behavior_gaps": "ignore"}}, ["body", "config", "importer",
                                                    "behavior_gaps"]),
        ({"importer": {"frame_fit": "stretch"}}, ["body", "config", "importer", "frame_fit"]),
        ({"predictor": {"loss": "mse"}}, ["body", "config", "predictor", "loss"]),
    ],
)
def test_bad_similarity_config_is_422_naming_the_field(
    client: TestClient, config: dict, loc: list
) -> None:
    res = _post(client, config)
    assert res.status_code == 422, res.text
    locs = [e["loc"][: len(loc)] for e in res.json()["detail"]]
    assert loc in locs, res.json()
    assert client.get("/api/runs").json()["total"] == 0  # nothing stored


def test_missing_recording_message_names_it_once(client: TestClient) -> None:
    res = _post(client, {"source": "recording", "recording": "nope.npz"})
    (err,) = res.json()["detail"]
    assert err["loc"] == ["body", "config", "recording"]
    assert err["msg"].startswith("'nope.npz' does not exist in ")


def test_recording_source_needs_a_path(client: TestClient) -> None:
    res = _post(client, {"source": "recording"})
    assert res.status_code == 422
    assert "recording" in res.text


def test_recordings_are_listed_and_can_be_named(client: TestClient, settings: Settings) -> None:
    root: Path = settings.recordings
    (root / "sensorium-scan" / "data").mkdir(parents=True)
    np.save(root / "sensorium-scan" / "data" / "x.npy", np.zeros(10))
    (root / "mine.npz").write_bytes(b"PK")
    items = client.get("/api/recordings").json()["items"]
    assert [(i["name"], i["kind"]) for i in items] == [
        ("mine.npz", "file"), ("sensorium-scan", "folder"),
    ]
    res = _post(client, {"source": "recording", "recording": "mine.npz"})
    assert res.status_code == 201, res.text
    # the NWB importer's options name a file that is not NWB: refused by field
    res = _post(client, {"source": "recording", "recording": "mine.npz",
                         "importer": {"behavior_gaps": "fill"}})
    assert res.status_code == 422
    (err,) = res.json()["detail"]
    assert err["loc"] == ["body", "config", "importer"] and "behavior_gaps apply to NWB" in err[
        "msg"]
    (root / "lab").mkdir()
    (root / "lab" / "s.nwb").write_bytes(b"x")
    res = _post(client, {"source": "recording", "recording": "lab",
                         "importer": {"behavior_gaps": "fill", "response_offset": 0.2,
                                      "responses": "Fluorescence/traces"}})
    assert res.status_code == 201, res.text
    assert res.json()["config"]["importer"]["response_offset"] == 0.2
    assert TestClient(client.app).get("/api/recordings").status_code == 401


def test_a_recording_is_inspected_before_anything_runs(client: TestClient,
                                                       settings: Settings) -> None:
    from tests.ml.neural.test_nwb_layouts import write_lab_nwb

    settings.recordings.mkdir(parents=True, exist_ok=True)
    write_lab_nwb(settings.recordings / "allen.nwb", layout="allen", dropout=(10.0, 13.0))
    res = client.post("/api/recordings/inspect", json={"recording": "allen.nwb"})
    assert res.status_code == 422  # the gap: the importer's own message, naming the series
    (err,) = res.json()["detail"]
    assert err["loc"] == ["body", "recording"]
    assert err["msg"].startswith("allen.nwb: acquisition/EyeTracking/eye_position: no samples")
    res = client.post("/api/recordings/inspect", json={
        "recording": "allen.nwb", "importer": {"behavior_gaps": "drop"}})
    assert res.status_code == 200, res.text
    (f,) = res.json()["files"]
    assert f["path"] == "allen.nwb" and f["format"] == "nwb"
    assert f["blank_dropped"] == 4 and f["gap_dropped"] > 0
    assert f["trials"] == 27 - f["gap_dropped"]
    assert f["behavior"]["running speed"] == "processing/running/speed [cm/s]"
    assert f["responses_found"] == ["processing/ophys/DfOverF/traces",
                                    "processing/ophys/Fluorescence/traces"]
    # a scan file: its own shape, typed as the OpenAPI document says (ScanReport)
    from ml.neural.io import save_npz
    from ml.neural.simulate import SimulationConfig, simulate

    save_npz(simulate(SimulationConfig(n_images=60, n_oracle=6, oracle_repeats=3, n_scans=2,
                                       neurons_per_scan=12)).scans,
             settings.recordings / "scans.npz")
    res = client.post("/api/recordings/inspect", json={"recording": "scans.npz"})
    assert res.status_code == 200, res.text
    scans = res.json()["files"]
    assert [(f["format"], f["neurons"]) for f in scans] == [("npz", 12), ("npz", 12)]
    assert scans[0]["repeats"]["oracle_images"] == 6 and scans[0]["repeats"]["min"] == 3
    assert "responses" not in scans[0] and res.json()["importer"]["behavior_gaps"] == "error"
    for body, loc in (({"recording": "nope.nwb"}, ["body", "recording"]),
                      ({"recording": "allen.nwb", "importer": {"frame_fit": "x"}},
                       ["body", "importer", "frame_fit"]),
                      ({"recording": "allen.nwb", "extra": 1}, ["body", "extra"])):
        res = client.post("/api/recordings/inspect", json=body)
        assert res.status_code == 422, res.text
        assert res.json()["detail"][0]["loc"][:len(loc)] == loc, res.json()
