"""``neuroreg alignment RUN`` prints the percept part's headline (issue 38, item 4) when the
evaluation ran it: beside the alignment scores, or alone."""

from __future__ import annotations

import json

import pytest

from cli import main
from tests.alignment_block import alignment_block
from tests.cli.conftest import Server
from tests.percept_block import percept_block
from tests.server.test_train_api import _stored_run


def test_alignment_prints_the_percept_headline_when_the_part_ran(
        server: Server, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    settings = server.settings
    percept = percept_block()
    head = percept["headline"]
    both = _stored_run(settings, "evaluate", config={"parts": ["minimal", "alignment",
                                                               "percept"]},
                       result={"alignment": alignment_block(0.4), "percept": percept})
    assert main(["alignment", str(both)]) == 0
    out = capsys.readouterr().out
    assert "RSA mix~oracle" in out  # the alignment table first
    lines = out.splitlines()
    start = next(i for i, ln in enumerate(lines) if "the predictor in the loop (l2" in ln)
    v1 = next(ln for ln in lines[start:] if ln.startswith("predicted V1"))
    assert f"{head['v1_adv_l2']:.3f}" in v1 and f"{head['v1_rand_l2']:.3f}" in v1
    tap = next(ln for ln in lines[start:] if ln.startswith("layer3 (deepest tap)"))
    assert f"{head['model_adv_l2']:.3f}" in tap and f"{head['model_rand_l2']:.3f}" in tap
    logits = next(ln for ln in lines[start:] if ln.startswith("logits"))
    control = percept["norms"]["l2"]["readouts"][-1]["rand"]["median"]
    assert f"{head['logits_adv_l2']:.3f}" in logits and f"{control:.3f}" in logits
    assert f"specificity {head['specificity_l2']:.3f}" in out
    assert main(["alignment", str(both), "--json"]) == 0
    said = json.loads(capsys.readouterr().out)
    assert said["percept"]["headline"] == pytest.approx(head)
    assert said["alignment"]["mean"]["rsa_mix_oracle"] == 0.4
    # the percept part alone: its headline, no alignment table
    alone = _stored_run(settings, "evaluate", config={"parts": ["minimal", "percept"]},
                        result={"percept": percept})
    assert main(["alignment", str(alone)]) == 0
    out = capsys.readouterr().out
    assert "RSA" not in out and "the predictor in the loop" in out
