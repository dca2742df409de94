"""``neuroreg alignment RUN`` against a live server: a train run and a similarity run
queue the evaluation that measures it; an evaluation's scores print per scan and as their
mean; a run that has none says why in one line."""

from __future__ import annotations

import pytest

from cli import main
from core.store.db import session_scope
from core.store.models import Run, RunStatus
from tests.cli.conftest import Server
from tests.server.test_train_api import _stored_run

HEADLINE = {"rsa_mix_oracle": 0.41, "rsa_mix_oracle_normalized": 0.52, "rsa_mix_target": 0.6,
            "rsa_mix_true": None, "rsa_best_oracle": 0.45, "cka_mix_oracle": 0.3,
            "feve_best": 0.2, "r2_best": 0.1}


def test_alignment_queues_the_evaluation_then_prints_its_scores(
        server: Server, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    settings = server.settings
    model = _stored_run(settings, "train", artifacts=("model.pt",))
    sim = _stored_run(settings, "similarity", artifacts=(
        "target-neural-model.npz", "predictor.pt", "config.json"))
    assert main(["alignment", str(model)]) == 1
    assert "--similarity ID" in capsys.readouterr().err
    assert main(["alignment", str(model), "--similarity", str(sim), "--replicates", "50",
                 "--folds", "3"]) == 0
    said = capsys.readouterr().out
    with session_scope(settings.db_url) as s:
        ev = s.query(Run).filter_by(kind="evaluate").one()
        assert ev.config["parts"] == ["alignment"] and ev.config["similarity_run"] == sim
        assert ev.config["alignment_replicates"] == 50 and ev.config["alignment_folds"] == 3
        assert ev.input_run_id == model
        ev_id = ev.id
    assert f"evaluate run {ev_id} queued" in said and f"neuroreg alignment {ev_id}" in said
    # not finished yet: said in one line
    assert main(["alignment", str(ev_id)]) == 1
    err = capsys.readouterr().err.strip()
    assert f"evaluate run {ev_id} is queued" in err and len(err.splitlines()) == 1
    # finished as the worker leaves it: the scores per scan and their mean
    block = {"source": "simulated recording (similarity run 2)", "n_scans": 2,
             "gamma_source": "learned (softmax of the similarity head's logits)",
             "scans": {"scan-0": {"headline": HEADLINE},
                       "scan-1": {"headline": {**HEADLINE, "rsa_mix_oracle": 0.39}}},
             "mean": {**HEADLINE, "rsa_mix_oracle": 0.40}, "message": None}
    with session_scope(settings.db_url) as s:
        run = s.get(Run, ev_id)
        run.status, run.result = RunStatus.succeeded, {"alignment": block}
    assert main(["alignment", str(ev_id)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "RSA mix~oracle" in lines[1] and "FEVE best tap" in lines[1]
    mean = next(ln for ln in lines if ln.lstrip().startswith("mean"))
    assert "0.400" in mean and "–" in mean  # rsa_mix_true: none for a recording's scans
    assert any(ln.lstrip().startswith("scan-1") and "0.390" in ln for ln in lines)
    assert main(["alignment", str(ev_id), "--json"]) == 0
    assert '"rsa_mix_oracle": 0.4' in capsys.readouterr().out


def test_an_evaluation_without_the_part_or_another_kind_says_why(
        server: Server, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    settings = server.settings
    ev = _stored_run(settings, "evaluate", config={"parts": ["noise"]}, result={"noise": {}})
    assert main(["alignment", str(ev)]) == 1
    err = capsys.readouterr().err
    assert "did not run the alignment part (its parts: noise)" in err
    sim = _stored_run(settings, "similarity")
    assert main(["alignment", str(sim)]) == 1
    assert "is a similarity run" in capsys.readouterr().err
