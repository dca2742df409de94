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


def test_our_attacks_check_their_inputs_show_their_settings_and_return_within_bounds(
    trained: tuple[torch.nn.Module, torch.Tensor, torch.Tensor]
) -> None:
    import foolbox as fb

    from ml.evaluate.sparse import JSMA, MinimizationAttack, SparseFool

    model, x, y = trained
    fmodel = fb.PyTorchModel(model.eval(), bounds=(0, 1))
    for attack in (JSMA(max_fraction=0.01), SparseFool(steps=1, deepfool_steps=2)):
        assert isinstance(attack, MinimizationAttack)
        assert repr(attack).startswith(type(attack).__name__ + "(")
        assert ("max_fraction=0.01" if isinstance(attack, JSMA) else "steps=1") in repr(attack)
        with pytest.raises(ValueError, match="one label per input"):
            attack.run(fmodel, x[:4], fb.criteria.Misclassification(y[:3]))
        with pytest.raises(ValueError, match="outside the model's bounds"):
            attack.run(fmodel, x[:2] + 2.0, fb.criteria.Misclassification(y[:2]))
        with pytest.raises(TypeError, match="float tensor"):
            attack.run(fmodel, (x[:2] * 255).to(torch.uint8), fb.criteria.Misclassification(y[:2]))
        adv = attack.run(fmodel, x[:3], fb.criteria.Misclassification(y[:3]))
        assert adv.shape == x[:3].shape and adv.min() >= 0 and adv.max() <= 1


def test_our_attacks_call_the_model_through_foolbox_so_its_preprocessing_applies(
    trained: tuple[torch.nn.Module, torch.Tensor, torch.Tensor]
) -> None:
    """A model given with Foolbox preprocessing is attacked as the same model with the
    normalisation inside it: JSMA sees what Foolbox's own attacks see."""
    import foolbox as fb

    from ml.evaluate.sparse import JSMA

    model, x, y = trained
    mean, std = 0.3, 0.5
    inner = torch.nn.Sequential(torch.nn.Identity(), model.eval())
    inner[0] = _Normalise(mean, std)
    inner.eval()
    with_pre = fb.PyTorchModel(model.eval(), bounds=(0, 1),
                               preprocessing={"mean": mean, "std": std})
    built_in = fb.PyTorchModel(inner, bounds=(0, 1))
    # images the normalised model gets right: one already wrong (or unbroken) comes back
    # unchanged, and on another processor's float kernels the first four all came back so
    with torch.no_grad():
        right = (inner(x[:200]).argmax(1) == y[:200]).nonzero().flatten()[:4]
    assert len(right) == 4
    xs, crit = x[right], fb.criteria.Misclassification(y[right])
    a = JSMA(max_fraction=0.02).run(with_pre, xs, crit)
    b = JSMA(max_fraction=0.02).run(built_in, xs, crit)
    assert torch.allclose(a, b) and not torch.equal(a, xs)


class _Normalise(torch.nn.Module):
    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def test_jsmas_budget_follows_the_number_of_pixels() -> None:
    (jsma,) = [r for r in schedule("paper", ["l0"]) if r.attack == "JSMA"
               and r.params == {"max_fraction": 0.1, "theta": 1.0}]
    assert jsma.budget(32 * 32) == 2 * 51  # 10 % of 1,024 pixels, two per step
    assert jsma.budget(3 * 32 * 32) == 2 * 153  # an RGB CIFAR image: three times the pixels
