import io

import numpy as np
import pytest
import torch

from ml.neural.estimators import unit_vectors
from ml.neural.stimuli import natural_patches
from ml.neural.target import SimilarityTarget
from ml.recorder import Cancelled, MemoryRecorder
from ml.train.joint import TrainConfig, paper_lr, train_model

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
    cfg = TrainConfig()
    lrs = [paper_lr(e, cfg) for e in range(40)]
    assert lrs[0] == lrs[3] == 0.1 and lrs[4] == pytest.approx(0.03)
    assert lrs[19] == pytest.approx(0.1 * 0.3**4) and lrs[20] == 0.1
    assert lrs[24] == pytest.approx(0.03)


def test_alpha_pulls_the_cnn_similarity_toward_the_target(target):
    runs = {}
    for alpha in (0.0, 2.0):
        rec = MemoryRecorder()
        res = train_model(TrainConfig(target="neural-model", alpha=alpha, **TINY),
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
    train_model(TrainConfig(target="shuffle", pairs="paper",
                                        **{**TINY, "epochs": 1}), rec, target)
    keys = {"task_loss", "sim_loss", "acc", "lr", "gamma/0", "test_acc", "sim_r"}
    assert keys <= set(rec.metrics)


def test_each_taps_r_is_logged_and_one_tap_alone_is_the_mix(target):
    rec = MemoryRecorder()
    res = train_model(TrainConfig(target="neural-model", **{**TINY, "epochs": 1}), rec, target)
    assert len(res.r_similarity_per_tap) == len(res.gamma) >= 2
    assert all(-1 <= r <= 1 for r in res.r_similarity_per_tap)
    assert {f"sim_r/{k}" for k in range(len(res.gamma))} <= set(rec.metrics)
    one = train_model(TrainConfig(target="neural-model", taps=[1], **{**TINY, "epochs": 1}),
                      MemoryRecorder(), target)
    assert one.gamma == [1.0]  # a single tap: softmax of one logit is exactly 1
    # exact on purpose: Eq. 10's mix of one tap is 1.0 · S_0, the same floats as S_0 alone
    assert one.r_similarity == one.r_similarity_per_tap[0]


def test_random_target_is_built_over_the_same_stimuli(target):
    rec = MemoryRecorder()
    res = train_model(TrainConfig(target="random", **{**TINY, "epochs": 1}),
                            rec, target)
    assert np.isfinite(res.r_similarity)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"target": "brain"}, "target"),
    ({"alpha": -1.0}, "alpha"),
    ({"pairs": "some"}, "pairs"),
])
def test_bad_configs_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**kwargs)


def test_missing_target_and_bad_taps_are_clear(target):
    with pytest.raises(ValueError, match="target"):
        train_model(TrainConfig(target="neural-model", **TINY), MemoryRecorder())
    with pytest.raises(ValueError, match="taps: 7 is out of range"):
        train_model(TrainConfig(target="neural-model", taps=(0, 7), **TINY),
                          MemoryRecorder(), target)


class Crash(Exception):
    """Stands in for a worker killed mid-run."""


class CountingRecorder(MemoryRecorder):
    """Counts every (key, step) sent, and can crash once a step is reached."""

    def __init__(self, crash_at: int | None = None) -> None:
        super().__init__()
        self.sent: dict[tuple[str, int], int] = {}
        self.crash_at = crash_at

    def log_metrics(self, metrics, step):  # type: ignore[no-untyped-def]
        if self.crash_at is not None and step >= self.crash_at:
            raise Crash(step)
        for key in metrics:
            self.sent[key, step] = self.sent.get((key, step), 0) + 1
        super().log_metrics(metrics, step)


def test_a_crashed_run_resumes_from_its_checkpoint_with_every_step_once(target):
    cfg = TrainConfig(target="neural-model", alpha=2.0, **{**TINY, "epochs": 3})
    whole = CountingRecorder()
    expected = train_model(cfg, whole, target)
    steps_per_epoch = expected.steps // 3

    rec = CountingRecorder(crash_at=steps_per_epoch * 2 + 2)  # dies in epoch 3
    with pytest.raises(Crash):
        train_model(cfg, rec, target)
    assert "checkpoint.pt" in rec.artifacts and "model.pt" not in rec.artifacts
    rec.crash_at = None
    resumed = train_model(cfg, rec, target)  # the task redelivered with the same store

    assert resumed.resumed_from_step == steps_per_epoch * 2
    assert set(rec.metrics) == set(whole.metrics)
    # exact on purpose: the same path on the same machine (deterministic=True, same shapes
    # and thread count), so a resume from the checkpoint reproduces every float bitwise
    for key, series in whole.metrics.items():
        assert sorted(rec.metrics[key]) == sorted(series), key  # every step, once
        assert rec.series(key) == whole.series(key), key
    # only steps after the checkpoint that the crashed attempt sent were sent again (a
    # store keeps a (key, step) once); nothing before the checkpoint was repeated
    again = {step for (key, step), n in rec.sent.items() if n > 1}
    assert again == set(range(steps_per_epoch * 2, steps_per_epoch * 2 + 2))
    assert resumed.test_accuracy == expected.test_accuracy
    assert resumed.r_similarity == expected.r_similarity


class HandBack(CountingRecorder):
    """A worker told to shut down (a SLURM job's end) after ``stop_at`` steps."""

    def __init__(self, stop_at: int) -> None:
        super().__init__()
        self.stop_at: int | None = stop_at
        self.checks = 0

    def should_stop(self) -> bool:  # asked once per step
        self.checks += 1
        return self.stop_at is not None and self.checks > self.stop_at

    def stop_resumes(self) -> bool:
        return True


def test_a_run_handed_back_mid_epoch_resumes_at_that_step(target):
    """A hand-back checkpoints where it stands; the next attempt resumes mid-epoch, with
    that epoch's batch order drawn again, and trains exactly the uninterrupted run."""
    cfg = TrainConfig(target="neural-model", alpha=2.0, **{**TINY, "epochs": 2})
    whole = CountingRecorder()
    expected = train_model(cfg, whole, target)
    steps_per_epoch = expected.steps // 2
    stop = steps_per_epoch + 2  # in the middle of epoch 2
    rec = HandBack(stop)
    with pytest.raises(Cancelled, match=f"stopped at step {stop}"):
        train_model(cfg, rec, target)
    ckpt = torch.load(io.BytesIO(rec.artifacts["checkpoint.pt"][0]), weights_only=False)
    assert (ckpt["epoch"], ckpt["batch"], ckpt["step"]) == (1, 2, stop)
    rec.stop_at = None
    resumed = train_model(cfg, rec, target)
    assert resumed.resumed_from_step == stop  # not the epoch's start
    # exact on purpose: the same path on the same machine, resumed from its own checkpoint
    for key in whole.metrics:
        assert rec.series(key) == whole.series(key), key
    assert not [k for k, n in rec.sent.items() if n > 1]  # no step was trained twice
    a = torch.load(io.BytesIO(whole.artifacts["model.pt"][0]), weights_only=False)
    b = torch.load(io.BytesIO(rec.artifacts["model.pt"][0]), weights_only=False)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])

    # a cancel (not a hand-back) leaves no new checkpoint behind
    cancelled = HandBack(3)
    cancelled.stop_resumes = lambda: False  # type: ignore[method-assign]
    with pytest.raises(Cancelled):
        train_model(cfg, cancelled, target)
    assert "checkpoint.pt" not in cancelled.artifacts


def test_a_checkpoint_from_another_config_is_refused(target):
    rec = MemoryRecorder()
    train_model(TrainConfig(target="neural-model", **{**TINY, "epochs": 2}), rec, target)
    with pytest.raises(ValueError, match="different config"):
        train_model(TrainConfig(target="neural-model", **{**TINY, "epochs": 3, "seed": 9}),
                    rec, target)


def test_bf16_autocast_and_channels_last_follow_the_fp32_run(target):
    runs = {}
    for precision, channels_last in (("fp32", False), ("bf16", True)):
        rec = MemoryRecorder()
        train_model(TrainConfig(target="neural-model", alpha=2.0, precision=precision,
                                channels_last=channels_last, **TINY), rec, target)
        runs[precision] = np.array(rec.series("loss"))
    fp32, bf16 = runs["fp32"], runs["bf16"]
    assert np.isfinite(bf16).all() and bf16[-5:].mean() < bf16[:5].mean()
    np.testing.assert_allclose(bf16[:5], fp32[:5], rtol=0.02)  # same run, lower precision
    assert not np.array_equal(bf16, fp32)  # autocast really ran in bfloat16


def test_stimuli_per_step_follows_the_pairs_mode():
    from ml.train.joint import stimuli_per_step

    assert stimuli_per_step(TrainConfig(pairs="paper")) == 64  # as many as the batch
    assert stimuli_per_step(TrainConfig(pairs="all")) == 32
    assert stimuli_per_step(TrainConfig(pairs="paper", stimuli_per_step=10)) == 10
    with pytest.raises(ValueError, match="stimuli_per_step"):
        TrainConfig(stimuli_per_step=1)


def test_features_only_with_the_cnn_features_target():
    from ml.train import FeatureSource

    with pytest.raises(ValueError, match="features"):
        TrainConfig(target="neural-model", features=FeatureSource(weights="vgg.pth"))
    with pytest.raises(ValueError, match="not both"):
        FeatureSource(weights="vgg.pth", run=3)
    cfg = TrainConfig(target="cnn-features", features={"run": 3, "layer": "1"})
    assert cfg.features == FeatureSource(run=3, layer="1")


def _weights(rec: MemoryRecorder) -> dict[str, torch.Tensor]:
    import io

    return torch.load(io.BytesIO(rec.artifacts["model.pt"][0]), weights_only=True)["state_dict"]


@pytest.mark.parametrize("resnet", [False, True], ids=["small_cnn", "resnet18"])
def test_a_target_at_alpha_0_trains_the_none_model_unless_stimuli_share_batchnorm(
        target, resnet):
    cfg = {**TINY, "epochs": 2}
    if resnet:
        cfg.update(backbone="resnet18", width=4, epochs=1)
    none_rec = MemoryRecorder()
    none = train_model(TrainConfig(target="none", **cfg), none_rec, None)
    base = _weights(none_rec)
    for mode in ("frozen", "separate", "shared"):
        rec = MemoryRecorder()
        res = train_model(TrainConfig(target="neural-model", alpha=0.0, stimulus_norm=mode,
                                      **cfg), rec, target)
        w = _weights(rec)
        # exact on purpose: the same kernels, seeds and batches; the stimulus pass must
        # leave the classification pathway (weights, BatchNorm statistics) untouched
        same = all(torch.equal(w[k], base[k]) for k in base)
        if mode == "shared":  # the stimuli moved the running statistics eval mode uses
            assert not same
            assert not all(torch.equal(w[k], base[k]) for k in base if "running" in k)
        else:
            assert same, mode
            assert res.test_accuracy == none.test_accuracy, mode
            assert rec.series("test_acc") == none_rec.series("test_acc"), mode
            assert rec.series("task_loss") == none_rec.series("task_loss"), mode
        assert "sim_loss" in rec.metrics and "sim_r" in rec.metrics


def test_separate_keeps_stimulus_statistics_of_its_own_and_frozen_none(target):
    from ml.train.classifier import load_model

    for mode in ("frozen", "separate"):
        rec = MemoryRecorder()
        train_model(TrainConfig(target="neural-model", alpha=2.0, stimulus_norm=mode,
                                **{**TINY, "epochs": 1}), rec, target)
        raw = torch.load(__import__("io").BytesIO(rec.artifacts["model.pt"][0]),
                         weights_only=True)
        task, _ = load_model(raw)
        stim, _ = load_model(raw, pathway="stimulus")
        means = [k for k in raw["state_dict"] if k.endswith("running_mean")]
        if mode == "frozen":
            assert raw["stimulus_bn"] == {}
            assert all(torch.equal(task.state_dict()[k], stim.state_dict()[k]) for k in means)
        else:
            assert sorted(k for k in raw["stimulus_bn"] if k.endswith("running_mean")) == \
                sorted(means)
            # the stimulus pathway's statistics are those of 36×64 natural images, the
            # task's those of digits: they differ, and the stimulus model carries them
            for k in means:
                assert not torch.allclose(raw["stimulus_bn"][k], raw["state_dict"][k])
                assert torch.equal(stim.state_dict()[k], raw["stimulus_bn"][k])
            counts = [v for k, v in raw["stimulus_bn"].items() if "num_batches" in k]
            assert all(int(c) == int(raw["step"]) for c in counts)  # one update a step


def test_an_unknown_stimulus_norm_is_refused_with_the_modes():
    with pytest.raises(ValueError, match=r"stimulus_norm.*shared.*frozen.*separate"):
        TrainConfig(stimulus_norm="mixed")  # type: ignore[arg-type]
