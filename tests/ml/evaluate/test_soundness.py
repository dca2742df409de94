"""The soundness part on small CPU models: a plain model's attacks agree and are sound,
a model whose gradients are masked is flagged, and the pieces measure what they say."""

import json

import numpy as np
import pytest
import torch

from ml.evaluate.attacks import AttackRun
from ml.evaluate.minimal import MinimalResult, minimal_perturbations
from ml.evaluate.record import leaderboard_row, model_record
from ml.evaluate.run import DEFAULT_PARTS, PARTS, EvaluateConfig, evaluate_model, sample_ids
from ml.evaluate.soundness import agreement, scale_to_fool, soundness
from ml.recorder import MemoryRecorder
from ml.train import TrainConfig, train_model
from ml.train.classifier import load_model

# gradient attacks of both kinds, short for a CPU (no Brendel & Bethge: its numba
# compilation alone takes half a minute): two L2 minimizers, two fixed-ε L∞ searches
RUNS = [
    AttackRun("L2CarliniWagnerAttack", "l2", {"steps": 30, "binary_search_steps": 3,
                                              "stepsize": 0.01}, iterations=90),
    AttackRun("DDNAttack", "l2", {"steps": 30}, iterations=30),
    AttackRun("LinfPGD", "linf", {"abs_stepsize": 0.003, "steps": 20}, search=True,
              iterations=120),
    AttackRun("LinfAdamPGD", "linf", {"abs_stepsize": 0.01, "steps": 20}, search=True,
              iterations=120),
]
NORMS = ("l2", "linf")


class Quantized(torch.nn.Module):
    """The model on 8-bit rounded inputs: the same decisions, a gradient of zero
    everywhere (round has none), so every gradient attack is blind."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.round(x * 255) / 255)


class Saturated(torch.nn.Module):
    """Softmax at a huge temperature as its output: one-hot in float32, its gradient
    vanishes (defensive distillation's masking)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x) * 1e4, dim=1)


@pytest.fixture(scope="module")
def reference() -> torch.nn.Module:
    """Another model of the task (seed 1), the transfer attacks' source."""
    rec = MemoryRecorder()
    # 12 epochs: at 8, seed 1 stayed near chance with one thread
    train_model(TrainConfig(backbone="small_cnn", width=16, epochs=12, lr=0.02, lr_decay=1.0,
                            seed=1, device="cpu"), rec)
    return load_model(rec.artifacts["model.pt"][0])[0]


def _check(model, reference, x, y, n=20):
    ids = sample_ids(len(x), n, 0)
    res = minimal_perturbations(model, x[ids], y[ids], RUNS, ids=ids, pool=(x, y),
                                num_classes=10, batch=64, norms=NORMS, search_steps=6)
    return res, soundness(model, x[ids], y[ids], res, norms=NORMS, runs=RUNS, pool=(x, y),
                          num_classes=10, reference=reference, samples=n, hsja_steps=10,
                          hsja_gradient_evals=40, search_steps=6, batch=64)


@pytest.fixture(scope="module")
def plain(trained, reference):
    model, x, y = trained
    return _check(model.eval(), reference, x, y)


def test_a_plain_model_is_sound_and_transfer_needs_more_than_white_box(plain):
    res, out = plain
    assert out["transfer_skipped"] is None
    for norm in NORMS:
        row = out["norms"][norm]
        assert row["verdict"] == "sound", row["warnings"]
        assert row["warnings"] == []
        tr, db = row["transfer"], row["decision_based"]
        assert tr["samples"] >= 10 and db["samples"] >= 10
        # perturbations found on another model need more to fool this one than its own
        assert tr["median"] >= tr["white_box_median"]
        assert db["median"] >= db["white_box_median"] / 1.1
        # the white-box minimum the probes are held against is the minimal search's own
        attacked = res.clean_correct[:out["samples"]]
        assert db["white_box_median"] == pytest.approx(
            np.median(res.best[norm][:out["samples"]][attacked]))
    per = out["per_sample"]["l2"]
    assert len(per["white_box"]) == len(per["decision_based"]) == out["samples"] == 20


def test_each_attack_family_has_its_median_its_ratio_and_its_share(plain):
    res, out = plain
    ag = out["norms"]["l2"]["agreement"]
    assert set(ag["families"]) == {"L2CarliniWagnerAttack", "DDNAttack"}
    best = res.best["l2"][res.clean_correct]
    assert ag["best_median"] == pytest.approx(np.median(best))
    for f in ag["families"].values():
        assert f["ratio"] >= 1 - 1e-12 and f["ratio"] == pytest.approx(
            f["median"] / ag["best_median"])
        assert 0 <= f["within"] <= 1 and f["censored"] == 0  # minimizers: never censored
    # every broken sample's minimum is credited to one attack
    shares = [f["found_minimum"] for f in ag["families"].values()]
    assert sum(shares) + ag["found_by_other_norms"] == pytest.approx(1.0)
    assert set(out["norms"]["linf"]["agreement"]["families"]) == {"LinfPGD", "LinfAdamPGD"}


@pytest.mark.parametrize("wrap", [Quantized, Saturated])
def test_a_model_with_masked_gradients_is_flagged(trained, wrap):
    model, x, y = trained
    _, out = _check(wrap(model).eval(), None, x, y, n=12)
    assert out["transfer_skipped"].startswith("no reference model")
    for norm in NORMS:
        row = out["norms"][norm]
        assert row["verdict"] == "suspect", norm
        # the decision-based attack, blind to gradients, finds what they could not
        db = row["decision_based"]
        assert db["smaller"] > 0.1 * db["samples"], db
        assert any("HopSkipJump" in w for w in row["warnings"])
    # its leaderboard row: one verdict, suspect, naming both norms, with every warning
    lb = leaderboard_row(model_record(evaluation={"id": 1, "result": {"soundness": out}},
                                      model={"id": 2, "config": {}}))
    assert lb["soundness"] == "suspect" and lb["soundness_suspect"] == ["L2", "L∞"]
    assert lb["soundness_warnings"] == [w for n in NORMS for w in out["norms"][n]["warnings"]]
    assert lb["soundness_n"] == out["samples"] == 12


def test_a_transfer_scale_lands_on_the_boundary_along_its_direction():
    """A linear two-class model: along δ the decision flips at s* = (c − w·x) / (w·δ)."""
    torch.manual_seed(0)
    w = torch.randn(16, dtype=torch.float64)
    x = torch.full((3, 1, 4, 4), 0.5, dtype=torch.float64)
    x[1] += 0.01
    c = float(w @ x[0].flatten()) + 1.0  # class 1 once w·x exceeds c: both start at 0
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)).double()
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([torch.zeros(16, dtype=torch.float64), w]))
        model[1].bias.copy_(torch.tensor([0.0, -c]))
        y = torch.zeros(3, dtype=torch.long)
        assert (model(x).argmax(1) == y).all()
    # the first fools at a scale below 1, the second only after doubling; the third is 0
    delta = torch.stack([w * 0.1, w * 1e-3, torch.zeros(16, dtype=torch.float64)]).view(
        3, 1, 4, 4)
    d = scale_to_fool(model, x, y, delta, "l2", steps=30, batch=8, device=torch.device("cpu"))
    for i in (0, 1):
        s = (c - float(w @ x[i].flatten())) / float(w @ delta[i].flatten())
        assert (s < 1) == (i == 0)
        assert d[i] == pytest.approx(s * float(delta[i].norm()), rel=1e-6)
    assert np.isinf(d[2])  # δ = 0 fools nothing


def test_a_fixed_eps_attack_failing_below_the_best_is_censored_at_that_bound():
    """Two samples: a minimizer finds 0.5 and 0.4; a search finds 0.3 on the first and
    fails on the second below its bound 0.4 — counted there, not as unbroken."""
    ids = np.array([10, 11])
    rows = [{"sample_id": 10, "attack": "DDNAttack", "norm": "l2", "success": True, "l2": 0.5},
            {"sample_id": 11, "attack": "DDNAttack", "norm": "l2", "success": True, "l2": 0.4},
            {"sample_id": 10, "attack": "LinfPGD", "norm": "l2", "success": True, "l2": 0.3},
            {"sample_id": 11, "attack": "LinfPGD", "norm": "l2", "success": False, "l2": None}]
    res = MinimalResult(ids, np.zeros(2), np.ones(2, bool), {"l2": np.array([0.3, 0.4])},
                        {"l2": ["LinfPGD(x=1)#0", "DDNAttack(steps=1)#0"]},
                        {"l2": np.zeros((2, 1, 2, 2))}, rows, {"l2": []})
    ag = agreement(res, "l2")
    pgd, ddn = ag["families"]["LinfPGD"], ag["families"]["DDNAttack"]
    assert (pgd["censored"], pgd["unbroken"], pgd["median"]) == (1, 0, pytest.approx(0.35))
    assert pgd["within"] == 0.5 and pgd["found_minimum"] == 0.5 == ddn["found_minimum"]
    assert ddn["median"] == pytest.approx(0.45) and ddn["within"] == 0.5
    assert ag["disagreement"] == pytest.approx(0.45 / 0.35)


def test_soundness_needs_the_minimal_part_and_is_not_a_default():
    assert EvaluateConfig().parts == DEFAULT_PARTS == (
        "noise", "minimal", "autoattack", "corruptions")
    assert {"soundness", "mechanism"} <= set(PARTS)
    with pytest.raises(ValueError, match="^parts: soundness checks the minimal part"):
        EvaluateConfig(parts=("noise", "soundness"))
    with pytest.raises(ValueError, match="^parts: .*attacks: none"):
        EvaluateConfig(parts=("minimal", "soundness"), attacks="none")
    assert EvaluateConfig(parts=("soundness", "minimal")).runs == ("minimal", "soundness")
    for field, value in (("soundness_samples", 0), ("hsja_steps", 0), ("transfer_steps", 0),
                         ("reference_run", 0)):
        with pytest.raises(ValueError, match=f"^{field}: "):
            EvaluateConfig(**{field: value})


def test_an_evaluation_records_its_soundness(trained, reference):
    model, x, y = trained
    cfg = EvaluateConfig(parts=("minimal", "autoattack", "soundness"), attacks="quick",
                         norms=("l2",), n_samples=10, batch_size=32, soundness_samples=6,
                         hsja_steps=6, hsja_gradient_evals=30, autoattack_eps={"l2": [0.3]},
                         autoattack_steps=5, autoattack_queries=20, device="cpu")
    rec = MemoryRecorder()
    out = evaluate_model(cfg, rec, model, x, y, num_classes=10, reference=reference)
    assert out["parts"] == ["minimal", "autoattack", "soundness"]
    sound = out["soundness"]
    assert "per_sample" not in sound and sound["samples"] == 6
    saved = json.loads(rec.artifacts["soundness.json"][0])
    assert saved["norms"] == sound["norms"] and len(saved["per_sample"]["l2"]["transfer"]) == 6
    assert set(sound["norms"]) == {"l2"}
    (aa,) = out["autoattack"]["threat_models"]["l2"]
    row = sound["norms"]["l2"]
    assert row["autoattack_inconsistent"] == aa["inconsistent"] is not None
    assert set(row["agreement"]["families"]) == {
        "L2BrendelBethgeAttack", "L2CarliniWagnerAttack", "DDNAttack"}  # the quick grid's
    assert rec.series("soundness_warnings_l2") == [len(row["warnings"])]
    assert rec.series("soundness_hsja_l2") == [row["decision_based"]["median"]]
    assert rec.series("soundness_transfer_l2") == [row["transfer"]["median"]]
    # its leaderboard row: the verdict and the samples it and the medians are over
    lb = leaderboard_row(model_record(evaluation={"id": 1, "result": out},
                                      model={"id": 2, "config": {}}))
    assert lb["soundness"] == row["verdict"] and lb["soundness_warnings"] == row["warnings"]
    assert lb["soundness_n"] == 6 and lb["minimal_n"] == 10 and lb["autoattack_l2_n"] is None
    assert rec.fractions == sorted(rec.fractions) and rec.fractions[-1] == pytest.approx(1)
