import numpy as np
import pytest
import torch

from ml.neural.estimators import unit_vectors
from ml.neural.stimuli import natural_patches
from ml.neural.target import SimilarityTarget
from ml.recorder import MemoryRecorder
from ml.train.joint import RegularizedConfig, paper_lr, train_regularized

TINY = dict(backbone="small_cnn", width=8, epochs=4, batch_size=256, lr=0.05,
            stimuli_per_step=24, heldout_fraction=0.25, deterministic=True, device="cpu")


@pytest.fixture(scope="module")
def target() -> SimilarityTarget:
    # a coarse target (luminance of the four quadrants) an untrained net only half matches
    images = natural_patches(80, seed=4)
    quad = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(images), (2, 2))
    f = quad.flatten(1).numpy()
    f = (f - f.mean(0)) / f.std(0)
    return SimilarityTarget("neural-model", unit_vectors(f), np.arange(80), images)


def test_paper_schedule_decays_every_4_epochs_and_resets_after_20():
    cfg = RegularizedConfig()
    lrs = [paper_lr(e, cfg) for e in range(40)]
    assert lrs[0] == lrs[3] == 0.1 and lrs[4] == pytest.approx(0.03)
    assert lrs[19] == pytest.approx(0.1 * 0.3**4) and lrs[20] == 0.1
    assert lrs[24] == pytest.approx(0.03)


def test_alpha_pulls_the_cnn_similarity_toward_the_target(target):
    runs = {}
    for alpha in (0.0, 2.0):
        rec = MemoryRecorder()
        res = train_regularized(RegularizedConfig(target="neural-model", alpha=alpha, **TINY),
                                rec, target)
        runs[alpha] = (res, rec)
    plain, reg = runs[0.0], runs[2.0]
    last = lambda rec: float(np.mean(rec.series("sim_loss")[-5:]))  # noqa: E731
    assert last(reg[1]) < last(plain[1])
    assert reg[0].r_similarity > plain[0].r_similarity
    # γ is recorded every step and still sums to one
    gammas = [reg[1].series(f"gamma/{k}")[-1] for k in range(3)]
    assert sum(gammas) == pytest.approx(1.0) and gammas != [1 / 3] * 3
    assert "model.pt" in reg[1].artifacts


def test_paper_pairs_mode_runs_and_logs_the_same_keys(target):
    rec = MemoryRecorder()
    train_regularized(RegularizedConfig(target="shuffle", pairs="paper",
                                        **{**TINY, "epochs": 1}), rec, target)
    keys = {"task_loss", "sim_loss", "acc", "lr", "gamma/0", "test_acc", "sim_r"}
    assert keys <= set(rec.metrics)


def test_random_target_is_built_over_the_same_stimuli(target):
    rec = MemoryRecorder()
    res = train_regularized(RegularizedConfig(target="random", **{**TINY, "epochs": 1}),
                            rec, target)
    assert np.isfinite(res.r_similarity)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"target": "brain"}, "target"),
    ({"alpha": -1.0}, "alpha"),
    ({"pairs": "some"}, "pairs"),
])
def test_bad_configs_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        RegularizedConfig(**kwargs)


def test_missing_target_and_bad_taps_are_clear(target):
    with pytest.raises(ValueError, match="target"):
        train_regularized(RegularizedConfig(target="neural-model", **TINY), MemoryRecorder())
    with pytest.raises(ValueError, match="taps: 7 is out of range"):
        train_regularized(RegularizedConfig(target="neural-model", taps=(0, 7), **TINY),
                          MemoryRecorder(), target)
