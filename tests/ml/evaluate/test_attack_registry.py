"""Every attack the registry holds, and every entry of every schedule, the same way: it
builds, and it runs (one step) through the harness on a small trained model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ml.evaluate.attacks import ATTACKS, NORMS, AttackRun, schedule
from ml.evaluate.minimal import minimal_perturbations

ONE_STEP = {"steps": 1, "binary_search_steps": 1, "max_fraction": 0.01}


@pytest.mark.parametrize("grid", ["quick", "paper"])
def test_every_entry_of_every_schedule_is_a_registered_attack_that_builds(grid: str) -> None:
    runs = schedule(grid, NORMS, repeats=2)  # type: ignore[arg-type]
    assert {r.attack for r in runs} == set(ATTACKS)  # the grids use every attack
    for run in runs:
        spec = ATTACKS[run.attack]
        assert (run.norm, run.search) == (spec.norm, spec.search)
        assert type(run.build()).__name__ in (run.attack, spec.cls().__name__)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_attack_runs_one_step_through_the_harness(
    name: str, trained: tuple[torch.nn.Module, torch.Tensor, torch.Tensor]
) -> None:
    model, x, y = trained
    (run,) = [r for r in schedule("quick", NORMS) if r.attack == name][:1] or [None]
    assert run is not None
    params = {k: ONE_STEP.get(k, v) for k, v in run.params.items()}
    one = dataclasses.replace(run, params=params)
    res = minimal_perturbations(model, x[:6], y[:6], [one], num_classes=10, pool=(x, y),
                                norms=[run.norm], search_steps=2)
    assert 0 < len(res.rows) <= int(res.clean_correct.sum())  # a row per attacked sample
    assert all(r["attack"] == name and r["norm"] == run.norm for r in res.rows)
    found = [r[run.norm] for r in res.rows if r["success"]]
    assert all(np.isfinite(d) and d > 0 for d in found)


def test_an_attack_the_registry_does_not_hold_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown attack 'FGSM'; known: "):
        AttackRun("FGSM", "linf")
    with pytest.raises(ValueError, match="DDNAttack is a l2 attack, not linf"):
        AttackRun("DDNAttack", "linf")
