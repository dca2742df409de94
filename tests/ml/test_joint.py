import io

import numpy as np
import pytest
import torch

from ml.neural.estimators import unit_vectors
from ml.neural.stimuli import natural_patches
from ml.neural.target import SimilarityTarget
from ml.recorder import Cancelled, MemoryRecorder
from ml.regularize import centred_cosine
from ml.train.joint import TrainConfig, paper_lr, train_model
from tests.floats import assert_within, one_path, two_paths

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
    # a float32 softmax: exp (≤ 2u), two additions and a division from 1
    assert_within(sum(gammas), 1.0, one_path(6, 1.0))
    assert gammas != [1 / 3] * 3
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
    ckpt = torch.load(io.BytesIO(rec.artifacts["checkpoint.pt"][0]), weights_only=True)
    assert (ckpt["epoch"], ckpt["batch"], ckpt["step"]) == (1, 2, stop)
    rec.stop_at = None
    resumed = train_model(cfg, rec, target)
    assert resumed.resumed_from_step == stop  # not the epoch's start
    # exact on purpose: the same path on the same machine, resumed from its own checkpoint
    for key in whole.metrics:
        assert rec.series(key) == whole.series(key), key
    assert not [k for k, n in rec.sent.items() if n > 1]  # no step was trained twice
    a = torch.load(io.BytesIO(whole.artifacts["model.pt"][0]), weights_only=True)
    b = torch.load(io.BytesIO(rec.artifacts["model.pt"][0]), weights_only=True)
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


# --- a cheaper stimulus pathway (bench/train_overhead.py): exact changes and options ---
def _normalize_first(features: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Eq. 9 as it was computed before the Gram form: rows normalized, then E Eᵀ."""
    e = features - mean
    e = e / e.norm(dim=1, keepdim=True).clamp_min(1e-8)
    return e @ e.T


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("centre", ["batch", "running"])
def test_eq9_from_the_gram_matrix_is_the_normalized_rows_product(centre, dtype):
    """Exact, not a deviation: the same S and gradient as normalizing the rows first.

    Compared within the rounding of the two paths (tests/floats.py): float64 shows the two
    formulas are one (agreeing to ~1e-15 where they differ in their last bits), float32 that
    the Gram form loses nothing more than rounding to it.
    """
    torch.manual_seed(0)
    for m, d in ((16, 36864), (32, 5120), (5, 7)):
        # post-ReLU: a large mean
        f = (torch.randn(m, d) + 0.7).relu().to(dtype).requires_grad_()
        g = f.detach().clone().requires_grad_()
        w = torch.randn(m, m, dtype=dtype)
        mean = (lambda x: x.mean(0)) if centre == "batch" else (lambda x: x.detach().mean(0))
        a, b = centred_cosine(f, mean(f)), _normalize_first(g, mean(g))
        # the magnitudes summed, from the exact values: S_ij = Σ_k ê_ik ê_jk, and the gradient
        # ∂/∂e_i of Σ w_ij S_ij = Σ_j (w_ij + w_ji)(ê_j − S_ij ê_i)/‖e_i‖ (through the mean too
        # when it is the batch's); n: the sums over d features and m rows, twice each, and the
        # scalings between
        e = f.detach().double() - f.detach().double().mean(0)
        norm = e.norm(dim=1, keepdim=True)
        unit = e / norm
        s = unit @ unit.T
        n = 2 * (m + d) + 8
        assert_within(a, b, two_paths(n, unit.abs() @ unit.abs().T, dtype), f"S {m}x{d}")
        (a * w).sum().backward()
        (b * w).sum().backward()
        coupling = (w + w.T).double().abs()
        terms = (coupling @ unit.abs() + (coupling * s.abs()).sum(1, keepdim=True) * unit.abs())
        terms = terms / norm
        if centre == "batch":
            terms = terms + terms.mean(0)
        assert_within(f.grad, g.grad, two_paths(n, terms, dtype), f"∂/∂f {m}x{d}")
    zero = torch.zeros(3, 4)  # a row equal to the mean: similarity 0, as before
    zero[1] = 1.0
    torch.testing.assert_close(centred_cosine(zero, torch.zeros(4)),
                               _normalize_first(zero, torch.zeros(4)))


def test_a_subset_of_taps_mixes_with_gamma_renormalized_and_moves_only_its_means():
    from ml.regularize import SimilarityHead, kept_taps

    head = SimilarityHead(3, centering="running")
    with torch.no_grad():
        head.logits.copy_(torch.tensor([0.5, 1.0, -2.0]))
    maps = [torch.randn(6, 2, 3, 3), torch.randn(6, 4, 2, 2), torch.randn(6, 8, 1, 1)]
    full = head.per_tap(maps)
    before = head.running_mean_2.clone()
    sub = head.per_tap(maps[:2], keep=[0, 1])
    torch.testing.assert_close(head.running_mean_2, before)  # the pruned tap's: untouched
    g = head.gamma[:2] / head.gamma[:2].sum()
    torch.testing.assert_close(head.mix(sub, [0, 1]), g[0] * sub[0] + g[1] * sub[1])
    torch.testing.assert_close(head.mix(full), head(maps))
    # the deepest tap whose γ reaches the threshold, and every shallower one
    assert kept_taps([0.3, 0.6, 0.1], [0, 1, 2], 0.2) == [0, 1]
    assert kept_taps([0.3, 0.6, 0.1], [0, 1, 2], 0.05) == [0, 1, 2]
    assert kept_taps([0.6, 0.1, 0.3], [0, 1, 2], 0.2) == [0, 1, 2]
    assert kept_taps([0.5, 0.5], [3, 1], 0.9) == [0, 1]  # above every γ: the largest counts
    assert kept_taps([0.9, 0.1], [3, 1], 0.5) == [0, 1]  # depth, not position, decides
    assert kept_taps([0.1, 0.9], [3, 1], 0.5) == [1]


def test_a_run_with_the_gram_form_follows_the_normalized_rows_run(target, monkeypatch):
    """The exact change at the level of a training: the same run, within float rounding."""
    import ml.regularize.similarity as similarity

    cfg = TrainConfig(target="neural-model", alpha=2.0, **{**TINY, "epochs": 1})
    now = MemoryRecorder()
    train_model(cfg, now, target)
    monkeypatch.setattr(similarity, "centred_cosine", _normalize_first)
    before = MemoryRecorder()
    train_model(cfg, before, target)
    for key in ("sim_loss", "task_loss", "gamma/0", "sim_r"):
        np.testing.assert_allclose(now.series(key), before.series(key), rtol=1e-5, err_msg=key)


def test_the_new_fields_at_their_defaults_are_the_run_without_them(target):
    """sim_every = 1 and a γ threshold nothing falls below train the very run of a config
    that leaves them out (as every stored config does); and a checkpoint written before
    the fields existed resumes."""
    base = {**TINY, "epochs": 2, "target": "neural-model", "alpha": 2.0}
    runs = {}
    for name, extra in (("unset", {}), ("explicit", {"sim_every": 1}),
                        ("prune_nothing", {"gamma_prune": 1e-6})):
        rec = MemoryRecorder()
        runs[name] = (train_model(TrainConfig(**base, **extra), rec, target), rec)
    res, rec = runs["unset"]
    for name in ("explicit", "prune_nothing"):
        other, orec = runs[name]
        # exact on purpose: the same path, the same floats
        for key in rec.metrics:
            assert orec.series(key) == rec.series(key), (name, key)
        assert other.r_similarity == res.r_similarity and other.gamma == res.gamma
        w, ow = _weights(rec), _weights(orec)
        assert all(torch.equal(w[k], ow[k]) for k in w), name
    prune_rec = runs["prune_nothing"][1]
    assert prune_rec.series("sim_taps") == [3.0] * res.steps  # every tap, every step

    # a checkpoint of this config from before sim_every and gamma_prune: it resumes
    crashed = CountingRecorder(crash_at=res.steps // 2 + 1)
    with pytest.raises(Crash):
        train_model(TrainConfig(**base), crashed, target)
    ckpt = torch.load(io.BytesIO(crashed.artifacts["checkpoint.pt"][0]), weights_only=True)
    for key in ("sim_every", "gamma_prune"):
        del ckpt["config"][key]
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    crashed.artifacts["checkpoint.pt"] = (buf.getvalue(), "application/octet-stream")
    crashed.crash_at = None
    resumed = train_model(TrainConfig(**base), crashed, target)
    assert resumed.resumed_from_step == res.steps // 2
    # exact on purpose: the same path on the same machine, resumed from its own checkpoint
    assert crashed.series("sim_loss") == rec.series("sim_loss")


class _StimulusCalls:
    """Records each training-mode pass of stimuli (36×64) through a backbone: the step it
    came in (from the recorder's should_stop count), its batch and the taps asked for."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from ml.models import TappedBackbone

        self.calls: list[tuple[int, int, list[int]]] = []
        self.step = -1
        original = TappedBackbone.forward_intermediates

        def spy(model, x, indices=None, **kw):  # type: ignore[no-untyped-def]
            if model.training and tuple(x.shape[-2:]) == (36, 64):
                self.calls.append((self.step, len(x), list(indices or [])))
            return original(model, x, indices, **kw)

        monkeypatch.setattr(TappedBackbone, "forward_intermediates", spy)

    def recorder(self) -> MemoryRecorder:
        spy = self

        class Stepping(MemoryRecorder):
            def should_stop(self) -> bool:  # asked once per step, before it
                spy.step += 1
                return False

        return Stepping()


def test_sim_every_runs_the_pathway_every_kth_step_with_k_times_the_stimuli(
        target, monkeypatch):
    k, m = 4, 8
    spy = _StimulusCalls(monkeypatch)
    rec = spy.recorder()
    cfg = TrainConfig(target="neural-model", alpha=2.0, sim_every=k,
                      **{**TINY, "epochs": 2, "stimuli_per_step": m})
    res = train_model(cfg, rec, target)
    pathway = list(range(0, res.steps, k))
    assert [(s, n) for s, n, _ in spy.calls] == [(s, k * m) for s in pathway]
    assert sorted(rec.metrics["sim_loss"]) == pathway  # L_sim only where it ran
    assert sorted(rec.metrics["task_loss"]) == list(range(res.steps))
    loss, task, sim = (dict(zip(rec.metrics[x], rec.series(x), strict=True))
                       for x in ("loss", "task_loss", "sim_loss"))
    for s in range(res.steps):  # k·α on a pathway step, the task loss alone between
        expected = task[s] + k * 2.0 * sim[s] if s in sim else task[s]
        assert loss[s] == pytest.approx(expected, rel=1e-5), s
    raw = torch.load(io.BytesIO(rec.artifacts["model.pt"][0]), weights_only=True)
    counts = {int(v) for key, v in raw["stimulus_bn"].items() if "num_batches" in key}
    assert counts == {len(pathway)}  # the stimulus statistics moved on pathway steps only
    assert np.isfinite(res.r_similarity)


def _collapsed_head(monkeypatch: pytest.MonkeyPatch, logits: list[float]) -> None:
    """Heads start with these γ logits (as after the paper's collapse onto one layer)."""
    from ml.regularize import SimilarityHead

    original = SimilarityHead.__init__

    def init(self, n_taps, **kw):  # type: ignore[no-untyped-def]
        original(self, n_taps, **kw)
        with torch.no_grad():
            self.logits.copy_(torch.tensor(logits))

    monkeypatch.setattr(SimilarityHead, "__init__", init)


def test_gamma_prune_stops_the_stimulus_pass_after_the_deepest_tap_gamma_keeps(
        target, monkeypatch):
    _collapsed_head(monkeypatch, [0.0, 4.0, -4.0])  # γ ≈ 0.018, 0.98, 0.0003
    spy = _StimulusCalls(monkeypatch)
    rec = spy.recorder()
    cfg = TrainConfig(target="neural-model", alpha=2.0, gamma_prune=0.05,
                      **{**TINY, "epochs": 1})
    res = train_model(cfg, rec, target)
    assert [t for _, _, t in spy.calls] == [[0, 1]] * res.steps  # the last stage never ran
    assert rec.series("sim_taps") == [2.0] * res.steps
    head = torch.load(io.BytesIO(rec.artifacts["model.pt"][0]), weights_only=True)["head"]
    # the pruned tap's logit had no gradient (the mix renormalizes γ over taps 0 and 1);
    # its γ moves only as the others' logits do
    assert head["logits"][2].item() == -4.0 and head["logits"][1].item() != 4.0
    assert len(res.r_similarity_per_tap) == 3  # held-out r: every tap's, still
    assert res.gamma[2] < 0.05

    # the held-out r of the mix is that of the taps a step keeps, γ renormalized
    from ml.regularize import SimilarityHead
    from ml.train.classifier import load_model
    from ml.train.joint import _heldout_r, _split
    from ml.train.pathway import stimulus_pathway

    raw = torch.load(io.BytesIO(rec.artifacts["model.pt"][0]), weights_only=True)
    model, _ = load_model(raw)
    trained = SimilarityHead(3)
    trained.load_state_dict(raw["head"])
    _, held = _split(len(target), cfg.heldout_fraction, cfg.seed)
    args = (model, trained, stimulus_pathway(model, "separate", raw["stimulus_bn"]),
            [0, 1, 2], torch.from_numpy(target.images[held]), target.block(held))
    pruned, per_tap = _heldout_r(*args, keep=[0, 1])
    assert (pruned, per_tap) == (res.r_similarity, res.r_similarity_per_tap)
    assert _heldout_r(*args)[0] != pruned  # not Eq. 10's mix of all three


def test_the_new_options_resume_exactly_from_a_hand_back(target, monkeypatch):
    _collapsed_head(monkeypatch, [0.0, 2.0, -2.0])  # γ ≈ 0.12, 0.87, 0.016: tap 2 pruned
    cfg = TrainConfig(target="neural-model", alpha=2.0, sim_every=3, gamma_prune=0.1,
                      **{**TINY, "epochs": 2})
    whole = CountingRecorder()
    expected = train_model(cfg, whole, target)
    stop = expected.steps // 2 + 2  # mid-epoch, between two pathway steps
    assert stop % 3
    rec = HandBack(stop)
    with pytest.raises(Cancelled):
        train_model(cfg, rec, target)
    rec.stop_at = None
    resumed = train_model(cfg, rec, target)
    assert resumed.resumed_from_step == stop
    # exact on purpose: the same path on the same machine, resumed from its own checkpoint
    for key in whole.metrics:
        assert rec.series(key) == whole.series(key), key
    assert sorted(whole.metrics["sim_loss"]) == list(range(0, expected.steps, 3))
    assert set(whole.series("sim_taps")) == {2.0}
    assert resumed.r_similarity == expected.r_similarity and resumed.gamma == expected.gamma


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"sim_every": 0}, "sim_every"),
    ({"gamma_prune": 1.0}, "gamma_prune"),
    ({"gamma_prune": 0.0}, "gamma_prune"),
])
def test_bad_pathway_options_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**kwargs)
