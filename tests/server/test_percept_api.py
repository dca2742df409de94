"""The percept part through the API (issue 38, item 4): it reads the minimal part's
adversarials and the similarity run's predictor and config, so a request without either is
a 422 naming ``parts`` or ``similarity_run``; with both it is queued."""

from __future__ import annotations

from fastapi.testclient import TestClient

from core.settings import Settings
from tests.server.test_evaluate_api import _post
from tests.server.test_train_api import _stored_run


def test_the_percept_part_needs_the_minimal_part_and_a_similarity_run_with_its_predictor(
    client: TestClient, settings: Settings
) -> None:
    ok = _stored_run(settings, "train", artifacts=("model.pt",))
    target = "target-neural-model.npz"
    full = _stored_run(settings, "similarity",
                       artifacts=(target, "predictor.pt", "config.json"))
    no_predictor = _stored_run(settings, "similarity", artifacts=(target, "config.json"))
    for extra, field, msg in (
            ({"parts": ["percept"], "similarity_run": full}, "parts",
             "percept reads the minimal part's adversarials"),
            ({"parts": ["minimal", "percept"], "attacks": "none", "similarity_run": full},
             "parts", "attacks: none leaves it out"),
            ({"parts": ["minimal", "percept"]}, "similarity_run", "the percept part reads"),
            ({"parts": ["minimal", "percept"], "similarity_run": no_predictor},
             "similarity_run", "has no predictor.pt")):
        res = _post(client, {"train_run": ok, **extra})
        assert res.status_code == 422, res.text
        errors = res.json()["detail"]
        assert any(e["loc"][:3] == ["body", "config", field] and msg in e["msg"]
                   for e in errors), errors
    res = _post(client, {"train_run": ok, "parts": ["minimal", "percept"], "attacks": "quick",
                         "similarity_run": full})
    assert res.status_code == 201, res.text
    assert res.json()["config"]["parts"] == ["minimal", "percept"]
