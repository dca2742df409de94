"""The mechanism part on small CPU models: input-gradient norms as autograd gives them,
the subspace share of perturbations inside and outside the images' principal subspace,
and each tap's similarity to the target as training computed it."""

import csv
import io
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ml.data import load_dataset
from ml.evaluate.mechanism import (
    TapTarget,
    input_gradient_norms,
    mechanism,
    principal_subspace,
    random_share,
    subspace_share,
    tap_similarity,
)
from ml.evaluate.run import EvaluateConfig, evaluate_model
from ml.neural.estimators import unit_vectors
from ml.neural.stimuli import natural_patches
from ml.neural.target import SimilarityTarget
from ml.recorder import MemoryRecorder
from ml.train import TrainConfig, train_model
from ml.train.classifier import load_model


@pytest.fixture(scope="module")
def basis() -> torch.Tensor:
    return principal_subspace(load_dataset("digits32", seed=0).train_images, 64)


def test_input_gradient_norms_are_autograds_per_sample(trained):
    model, x, y = trained
    l2, l1 = input_gradient_norms(model, x[:7], y[:7], batch=3)
    for i in range(7):
        xi = x[i:i + 1].clone().requires_grad_(True)
        F.cross_entropy(model(xi), y[i:i + 1]).backward()
        g = xi.grad.double().flatten()
        assert l2[i] == pytest.approx(float(g.norm()), rel=1e-5)
        assert l1[i] == pytest.approx(float(g.abs().sum()), rel=1e-5)
    assert (l2 > 0).all() and (l1 >= l2).all()


def test_the_principal_subspace_is_orthonormal_and_ordered_by_variance(basis):
    images = load_dataset("digits32", seed=0).train_images.flatten(1).double()
    assert basis.shape == (1024, 64)
    assert torch.allclose(basis.T @ basis, torch.eye(64, dtype=torch.float64), atol=1e-10)
    var = ((images - images.mean(0)) @ basis).var(0)
    assert (var[:-1] >= var[1:] - 1e-9).all()  # largest first
    # no direction outside it holds more variance than its weakest component
    other = torch.randn(1024, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    other -= basis @ (basis.T @ other)
    other /= other.norm()
    assert float(((images - images.mean(0)) @ other).var()) <= float(var[-1])


def test_a_perturbation_inside_the_subspace_has_share_one_a_random_one_k_over_d(basis):
    gen = torch.Generator().manual_seed(0)
    inside = (torch.randn(20, 64, generator=gen, dtype=torch.float64) @ basis.T).view(
        20, 1, 32, 32)
    np.testing.assert_allclose(subspace_share(inside, basis), 1.0, atol=1e-10)
    orthogonal = torch.randn(20, 1024, generator=gen, dtype=torch.float64)
    orthogonal -= (orthogonal @ basis) @ basis.T
    np.testing.assert_allclose(subspace_share(orthogonal, basis), 0.0, atol=1e-10)
    rand = random_share(basis, n=2000, seed=3)
    # k / D in expectation (Beta(k/2, (D − k)/2): sd ≈ 0.0075 here)
    assert rand.mean() == pytest.approx(64 / 1024, abs=0.002)
    assert abs(np.median(rand) - 64 / 1024) < 0.005
    assert np.isnan(subspace_share(torch.zeros(1, 1, 32, 32), basis)).all()


def test_too_many_components_are_refused_naming_the_field():
    with pytest.raises(ValueError, match="^subspace_k: "):
        principal_subspace(torch.rand(50, 1, 4, 4), 16)
    with pytest.raises(ValueError, match="^subspace_k: "):
        EvaluateConfig(subspace_k=0)


@pytest.fixture(scope="module")
def target() -> SimilarityTarget:
    # as tests/ml/test_joint.py: the luminance of the four quadrants
    images = natural_patches(60, seed=4)
    quad = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(images), (2, 2))
    f = quad.flatten(1).numpy()
    f = (f - f.mean(0)) / f.std(0)
    return SimilarityTarget("neural-model", unit_vectors(f), np.arange(60), images)


def test_each_taps_similarity_is_what_training_reported(target):
    cfg = TrainConfig(backbone="small_cnn", width=8, epochs=2, batch_size=256, lr=0.05,
                      target="neural-model", alpha=2.0, stimuli_per_step=24,
                      heldout_fraction=0.25, stimulus_norm="separate", device="cpu")
    rec = MemoryRecorder()
    res = train_model(cfg, rec, target)
    ckpt = torch.load(io.BytesIO(rec.artifacts["model.pt"][0]), weights_only=True)
    got = tap_similarity(TapTarget(ckpt, target, "test"))
    assert got["r"] == res.r_similarity_per_tap and got["r_mix"] == res.r_similarity
    assert got["layers"] == res.layers and got["stimuli"] == 15  # a quarter held out
    # through an evaluation: recorded per tap
    model, _ = load_model(ckpt)
    data = load_dataset("digits32", seed=0)
    recorder = MemoryRecorder()
    out = evaluate_model(EvaluateConfig(parts=("mechanism",), n_samples=20, device="cpu"),
                         recorder, model, data.test_images, data.test_labels, num_classes=10,
                         train_images=data.train_images,
                         tap_target=TapTarget(ckpt, target, "its own"))
    layers = out["mechanism"]["layers"]
    assert layers["r"] == res.r_similarity_per_tap and layers["source"] == "its own"
    assert recorder.series("tap_r") == res.r_similarity_per_tap
    assert out["mechanism"]["layers_skipped"] is None
    # no minimal part: nothing to project, and it says so
    sub = out["mechanism"]["subspace"]
    assert sub["norms"] == {} and "minimal part did not run" in sub["skipped"]
    assert sub["random"]["median"] == pytest.approx(64 / 1024, abs=0.01)
    # a target this network cannot take (three-channel stimuli): skipped, saying why
    rgb = SimilarityTarget("neural-model", target.factor, target.image_ids,
                           np.repeat(target.images, 3, axis=1))
    summary, _ = mechanism(model, data.test_images[:4], data.test_labels[:4], ids=np.arange(4),
                           perturbations=None, train_images=None,
                           tap_target=TapTarget(ckpt, rgb, "rgb"))
    assert summary["layers"] is None and summary["layers_skipped"].startswith("rgb: Runtime")
    assert summary["subspace"]["skipped"] == "no training images given"


def test_an_evaluation_records_its_mechanism(trained):
    model, x, y = trained
    data = load_dataset("digits32", seed=0)
    cfg = EvaluateConfig(parts=("minimal", "mechanism"), attacks="quick", norms=("l2",),
                         n_samples=12, batch_size=32, subspace_k=32, device="cpu")
    rec = MemoryRecorder()
    out = evaluate_model(cfg, rec, model, x, y, num_classes=10,
                         train_images=data.train_images)
    mech = out["mechanism"]
    assert mech["layers"] is None and "no similarity target" in mech["layers_skipped"]
    saved = json.loads(rec.artifacts["mechanism.json"][0])
    detail = saved["per_sample"]
    assert len(detail["input_gradient_l2"]) == 12 == len(detail["subspace_l2"])
    assert mech["input_gradient"]["l2"]["median"] == pytest.approx(
        np.median(detail["input_gradient_l2"]))
    assert rec.series("grad_l2_median") == [mech["input_gradient"]["l2"]["median"]]
    # one share per broken, correctly classified sample (none for the others), in [0, 1]
    shares = [s for s in detail["subspace_l2"] if s is not None]
    minimal = csv.DictReader(io.StringIO(rec.artifacts["minimal.csv"][0].decode()))
    broken = [row["clean_correct"] == "1" and row["l2"] != "inf" for row in minimal]
    assert len(shares) == sum(broken) == mech["subspace"]["norms"]["l2"]["n"] > 0
    assert [s is not None for s in detail["subspace_l2"]] == broken
    assert all(0 <= s <= 1 for s in shares)
    assert sum(mech["subspace"]["norms"]["l2"]["histogram"]["counts"]) == len(shares)
    assert mech["subspace"]["expected_random"] == 32 / 1024
    assert rec.series("subspace_share_l2") == [mech["subspace"]["norms"]["l2"]["median"]]
    # its leaderboard row: the medians, each beside the samples it is over
    from ml.evaluate.record import leaderboard_row, model_record

    lb = leaderboard_row(model_record(evaluation={"id": 1, "result": out},
                                      model={"id": 2, "config": {}}))
    assert (lb["grad_l2_median"], lb["grad_n"]) == (mech["input_gradient"]["l2"]["median"], 12)
    assert lb["subspace_share_l2"] == mech["subspace"]["norms"]["l2"]["median"]
    assert lb["subspace_share_l2_n"] == len(shares) and lb["minimal_n"] == 12
