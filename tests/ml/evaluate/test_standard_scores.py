"""The field's standard robustness numbers: AutoAttack at fixed ε, CIFAR-10-C's
corruptions, and an evaluation that runs the parts its config picks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from ml.evaluate import EvaluateConfig, evaluate_model
from ml.evaluate.autoattack import (
    COMPONENTS,
    _components,
    autoattack,
    check_epsilons,
    inconsistencies,
)
from ml.evaluate.checks import MARGIN, logit_margin
from ml.evaluate.corruptions import BENCHMARK, CORRUPTIONS, EXTRA, corrupt
from ml.evaluate.minimal import distances
from ml.recorder import MemoryRecorder

# --- AutoAttack ----------------------------------------------------------------------


def test_components_are_the_standard_version_not_torchattacks_defaults(trained):
    """torchattacks' AutoAttack(version='standard') leaves APGD/APGD-T/FAB at 10
    iterations and targets n_classes − 1 classes; the paper's standard is 100 and 9."""
    model, _, _ = trained
    parts = dict(_components(model, "linf", 8 / 255, num_classes=10, seed=0, steps=100,
                             queries=5000))
    assert list(parts) == list(COMPONENTS)
    assert parts["apgd-ce"].steps == parts["apgd-t"].steps == parts["fab-t"].steps == 100
    assert parts["apgd-ce"].loss == "ce" and parts["fab-t"].multi_targeted
    assert parts["apgd-t"].n_target_classes == parts["fab-t"].n_target_classes == 9
    assert parts["square"].n_queries == 5000
    hundred = dict(_components(model, "l2", 0.5, num_classes=100, seed=0, steps=100,
                               queries=5000))
    assert hundred["apgd-t"].n_target_classes == 9  # not 99
    assert hundred["apgd-t"].norm == "L2"


@pytest.fixture(scope="module")
def aa(trained):
    model, x, y = trained
    return autoattack(model, x[:40], y[:40], norm="linf", epsilon=0.005, num_classes=10,
                      steps=10, queries=50)


def test_every_adversarial_autoattack_reports_is_within_eps_and_misclassified(aa, trained):
    model, x, y = trained
    broken = np.flatnonzero(~aa.robust & aa.clean_correct)
    assert len(broken) > 0 and aa.robust.sum() > 0  # ε small enough to leave some
    adv = torch.from_numpy(aa.adversarials[broken])
    d = distances(adv, x[:40][broken])["linf"].numpy()
    assert (d <= 0.005 * (1 + 1e-5)).all()
    np.testing.assert_allclose(d, aa.distance[broken])
    with torch.no_grad():  # wrong in any batch layout: all at once and one by one
        assert (model(adv).argmax(1) != y[:40][broken]).all()
        assert (torch.cat([model(a[None]) for a in adv]).argmax(1) != y[:40][broken]).all()
        assert (logit_margin(model(adv), y[:40][broken]) > MARGIN / 2).all()
    assert set(aa.broken_by) <= {"", "clean", *COMPONENTS}
    after = list(aa.after.values())
    assert after == sorted(after, reverse=True)  # each component only removes samples
    assert after[-1] == pytest.approx(aa.robust_accuracy)
    assert aa.robust_accuracy <= aa.clean_correct.mean()
    assert aa.summary()["version"] == "custom"  # fewer steps than the standard's


def test_a_sample_autoattack_breaks_below_its_minimal_perturbation_is_reported(aa):
    ids = np.arange(100, 140)
    exact = np.where(aa.robust, np.inf, aa.distance)  # the minimal search found the same
    assert inconsistencies(aa, exact, ids) == []
    weak = np.where(aa.clean_correct, np.inf, 0.0)  # a minimizer that broke nothing
    bad = inconsistencies(aa, weak, ids)
    broken = np.flatnonzero(~aa.robust & aa.clean_correct)
    assert [b["sample_id"] for b in bad] == (ids[broken]).tolist()
    assert all(b["minimal"] is None and b["by"] in COMPONENTS for b in bad)


@pytest.mark.parametrize("eps, match", [
    ({"linf": [0.0]}, r"autoattack_eps: linf: each ε must be in \(0, 1\]"),
    ({"l2": [1.5]}, r"autoattack_eps: l2: each ε must be in \(0, 1\]"),
    ({"l1": [0.1]}, "unknown threat model 'l1'"),
    ({"linf": ["big"]}, "autoattack_eps: linf"),
])
def test_bad_eps_and_threat_models_are_refused_by_field(eps, match):
    with pytest.raises(ValueError, match=match):
        check_epsilons(eps)
    with pytest.raises(ValueError, match=match):
        EvaluateConfig(autoattack_eps=eps)


# --- corruptions ---------------------------------------------------------------------


def test_the_nineteen_corruptions_with_cifar10c_not_imagenetc_severities():
    assert len(BENCHMARK) == 15 and len(EXTRA) == 4
    assert EXTRA == ("speckle_noise", "gaussian_blur", "spatter", "saturate")
    assert CORRUPTIONS["gaussian_noise"].severities == (0.04, 0.06, 0.08, 0.09, 0.10)
    assert CORRUPTIONS["jpeg_compression"].severities == (80, 65, 58, 50, 40)
    assert CORRUPTIONS["defocus_blur"].severities[0] == (0.3, 0.4)  # ImageNet-C: (3, 0.1)


@pytest.mark.parametrize("channels", [1, 3])
def test_every_corruption_and_severity_gives_8_bit_images_of_the_same_shape(trained,
                                                                           channels):
    _, x, _ = trained
    imgs = x[:3].repeat(1, channels, 1, 1) * torch.tensor(
        [1.0, 0.8, 0.6][:channels]).view(1, -1, 1, 1)
    for name in CORRUPTIONS:
        for sev in (1, 5):
            out = corrupt(imgs, name, sev, seed=0)
            assert out.shape == imgs.shape and out.min() >= 0 and out.max() <= 1, name
            # 8-bit, as CIFAR-10-C; exact on purpose: k/255 is one IEEE division, and
            # k/255·255 rounds back to k
            assert torch.equal((out * 255).round() / 255, out), name
    noise = [float((corrupt(imgs, "gaussian_noise", s, seed=0) - imgs).abs().mean())
             for s in range(1, 6)]
    assert noise == sorted(noise)  # a higher severity moves the image further


def test_an_image_gets_the_same_corruption_in_any_batch_and_a_new_one_per_seed(trained):
    _, x, _ = trained
    whole = corrupt(x[:6], "frost", 3, seed=7)
    part = corrupt(x[3:5], "frost", 3, seed=7, ids=[3, 4])
    assert torch.equal(whole[3:5], part)  # exact on purpose: one image, one path, twice
    assert not torch.equal(corrupt(x[:6], "frost", 3, seed=8), whole)


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "rain", "severity": 1}, "corruptions: \\['rain'\\] given"),
    ({"name": "fog", "severity": 6}, "corruption_severities: \\[6\\] given"),
])
def test_unknown_corruptions_and_severities_are_refused_by_field(trained, kwargs, match):
    _, x, _ = trained
    with pytest.raises(ValueError, match=match):
        corrupt(x[:2], seed=0, **kwargs)
    field = "corruptions" if "rain" in str(kwargs) else "corruption_severities"
    value = [kwargs["name"]] if field == "corruptions" else [kwargs["severity"]]
    with pytest.raises(ValueError, match=match):
        EvaluateConfig(**{field: value})


def test_corruptions_refuse_images_their_severities_were_not_made_for():
    with pytest.raises(ValueError, match="defined for \\(N, 1 or 3, 32, 32\\)"):
        corrupt(torch.zeros(2, 1, 36, 64), "fog", 1, seed=0)


# --- an evaluation runs the parts it picks --------------------------------------------


@dataclass
class _Progress(MemoryRecorder):
    messages: list[str] = field(default_factory=list)

    def progress(self, fraction: float, message: str = "") -> None:
        super().progress(fraction, message)
        self.messages.append(message)


def test_an_evaluation_runs_the_parts_it_picks_with_progress_per_batch(trained):
    model, x, y = trained
    cfg = EvaluateConfig(parts=("autoattack", "corruptions"), n_samples=30, batch_size=10,
                         autoattack_eps={"l2": [0.1]}, autoattack_steps=5,
                         autoattack_queries=20, corruptions=("contrast", "fog"),
                         corruption_severities=(1, 5), corruption_samples=40, device="cpu")
    rec = _Progress()
    out = evaluate_model(cfg, rec, model, x, y, num_classes=10)
    assert out["parts"] == ["autoattack", "corruptions"]
    assert "noise" not in out and "median_l2" not in out
    (row,) = out["autoattack"]["threat_models"]["l2"]
    assert row["epsilon"] == 0.1 and row["n"] == 30 and row["inconsistent"] is None
    assert rec.series("autoattack_l2") == [row["robust_accuracy"]]
    cor = out["corruptions"]
    assert set(cor["accuracy"]) == {"contrast", "fog"} and cor["n"] == 40
    assert cor["mean_accuracy"] == pytest.approx(np.mean(list(cor["accuracy"].values())))
    assert rec.series("corruption_acc") == [cor["mean_accuracy"]]
    assert {"autoattack.csv", "corruptions.csv", "provenance.json"} <= set(rec.artifacts)
    lines = rec.artifacts["autoattack.csv"][0].decode().splitlines()
    assert len(lines) == 1 + 30
    # progress per batch (APGD-CE's 3, then at least one for each later component on the
    # samples left, then the 4 corruption cells), never back
    assert len(rec.fractions) >= 3 + 3 + 4 and rec.fractions == sorted(rec.fractions)
    assert rec.fractions[-1] == pytest.approx(1.0)
    assert any("left" in m for m in rec.messages)


def test_parts_are_checked_and_attacks_none_leaves_the_minimal_search_out():
    with pytest.raises(ValueError, match="parts: \\['robustbench'\\] given"):
        EvaluateConfig(parts=("noise", "robustbench"))
    with pytest.raises(ValueError, match="each once"):
        EvaluateConfig(parts=("noise", "noise"))
    assert EvaluateConfig(attacks="none").runs == ("noise", "autoattack", "corruptions")
    assert EvaluateConfig().runs == ("noise", "minimal", "autoattack", "corruptions")


def test_corrupted_images_are_made_once_per_process_for_every_model(trained, monkeypatch):
    from ml.evaluate import corruptions

    _, x, _ = trained
    calls = []
    real = corruptions.corrupt_one
    monkeypatch.setattr(corruptions, "corrupt_one", lambda *a: calls.append(1) or real(*a))
    first = corrupt(x[:5], "pixelate", 2, seed=11)
    again = corrupt(x[:5], "pixelate", 2, seed=11)
    assert torch.equal(first, again) and len(calls) == 5  # exact on purpose: the cached copy
    corrupt(x[:5], "pixelate", 2, seed=12)  # another draw: made anew
    assert len(calls) == 10


def test_autoattack_refuses_a_constant_model_as_the_minimal_search_does(trained):
    _, x, y = trained

    class Constant(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(len(x), 10).index_fill_(1, torch.tensor([3]), 1.0)

    with pytest.raises(ValueError, match="predicts class 3 for every sample"):
        autoattack(Constant(), x[:20], y[:20], norm="linf", epsilon=0.03, num_classes=10)


def test_an_evaluation_runs_its_model_in_float32_not_tf32(trained):
    model, x, y = trained
    seen: list[tuple[bool, bool]] = []

    class Watch(torch.nn.Module):  # what the backends allow whenever the model runs
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            seen.append((torch.backends.cudnn.allow_tf32,
                         torch.backends.cuda.matmul.allow_tf32))
            return self.inner(t)

    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        cfg = EvaluateConfig(parts=("noise", "autoattack"), noise_sigmas=(0.0, 0.1),
                             autoattack_eps={"linf": [0.01]}, autoattack_steps=2,
                             autoattack_queries=5, n_samples=10, batch_size=10, device="cpu")
        evaluate_model(cfg, MemoryRecorder(), Watch(), x[:200], y[:200], num_classes=10)
        assert seen and set(seen) == {(False, False)}
        # and given back as they were
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == (
            True, True)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before
