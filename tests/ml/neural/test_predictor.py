import dataclasses

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from ml.neural.predictor import (
    READOUTS,
    FitResult,
    PredictorConfig,
    build_predictor,
    fit_predictor,
    predict,
)
from ml.neural.predictor._data import pearson
from ml.neural.scan import BEHAVIOR, Scan
from ml.recorder import Cancelled, MemoryRecorder

RUN = BEHAVIOR.index("running_speed")
TINY = dict(hidden_channels=8, behavior_hidden=4, batch_size=32)


def smooth_images(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 1, 36, 64) low-pass noise in [0, 1]: structure at the scale of receptive fields."""
    noise = gaussian_filter(rng.normal(size=(n, 36, 64)), sigma=(0, 2.0, 2.0))
    noise /= noise.std(axis=(1, 2), keepdims=True)
    return np.clip(0.5 + 0.2 * noise, 0, 1)[:, None].astype(np.float32)


def synthetic_scan(
    name: str = "s1",
    *,
    signal: int = 12,
    noise: int = 6,
    n_images: int = 700,
    n_oracle: int = 10,
    repeats: int = 4,
    n_validation: int = 120,
    seed: int = 0,
) -> Scan:
    """Neurons ``0..signal-1`` respond to the image: a rectified Gabor-like filter at a
    random position, times a running-speed gain, plus Poisson noise. The last ``noise``
    neurons fire at a constant Poisson rate whatever the image."""
    rng = np.random.default_rng(seed)
    images = smooth_images(n_images, rng)
    yy, xx = np.mgrid[0:36, 0:64].astype(np.float64)
    filters = []
    for _ in range(signal):
        cy, cx = rng.uniform(12, 24), rng.uniform(20, 44)
        theta = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
        envelope = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 3.0**2))
        filters.append((envelope * np.cos(2 * np.pi * u / 10)).ravel())
    drive = (images[:, 0].reshape(n_images, -1) - 0.5) @ np.stack(filters).T  # (N, signal)
    drive = np.maximum(drive / drive.std(axis=0), 0)  # rectified, unit scale

    oracle = np.arange(n_oracle)
    singles = np.arange(n_oracle, n_images)
    trial_ids = np.concatenate([singles, np.repeat(oracle, repeats)])
    tiers = np.full(trial_ids.size, "train", dtype="<U10")
    tiers[singles.size - n_validation : singles.size] = "validation"
    tiers[singles.size :] = "test"
    t = trial_ids.size
    behavior = rng.normal(size=(t, 4)).astype(np.float32)
    behavior[:, RUN] = rng.uniform(0, 1, size=t)
    gain = 0.5 + 1.5 * behavior[:, RUN : RUN + 1]  # (T, 1): running doubles responses
    rate = np.concatenate([gain * (0.2 + 2.0 * drive[trial_ids]), np.full((t, noise), 1.0)], axis=1)
    return Scan(
        name=name,
        images=images,
        image_ids=np.arange(n_images),
        trial_image_ids=trial_ids,
        responses=rng.poisson(rate).astype(np.float32),
        behavior=behavior,
        tiers=tiers,
        oracle_ids=oracle,
    )


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run faster on one thread, and a busy machine can't oversubscribe it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _inputs(batch: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, 36, 64, generator=gen), torch.randn(batch, 4, generator=gen)


def _model(readout: str):
    config = PredictorConfig(readout=readout, **TINY)
    return build_predictor(config, {"a": 5, "mouse.2": 7})  # "." can't be a module key


@pytest.mark.parametrize("readout", READOUTS)
def test_forward_is_positive_with_one_output_per_neuron(readout: str) -> None:
    model = _model(readout)
    images, behavior = _inputs()
    for train in (True, False):
        model.train(train)
        for scan, n in (("a", 5), ("mouse.2", 7)):
            out = model(images, scan, behavior)
            assert out.shape == (3, n)
            assert torch.isfinite(out).all() and (out > 0).all()
    with pytest.raises(KeyError, match="unknown scan 'nope'"):
        model(images, "nope", behavior)
    with pytest.raises(ValueError, match="behavior must be"):
        model(images, "a", None)


@pytest.mark.parametrize("readout", READOUTS)
def test_gradients_reach_core_readout_shifter_and_modulator(readout: str) -> None:
    model = _model(readout)
    images, behavior = _inputs()
    model(images, "a", behavior).log().sum().backward()
    parts = {
        "core": model.core,
        "readout": model.readouts["scan0"],
        "shifter": model.shifters["scan0"],
        "modulator": model.modulators["scan0"],
    }
    for name, part in parts.items():
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads), f"no gradient reaches the {name}"
    assert all(p.grad is None for p in model.readouts["scan1"].parameters())


@pytest.mark.parametrize("readout", READOUTS)
def test_regularizer_is_positive_and_differentiable(readout: str) -> None:
    model = _model(readout)
    total = model.regularizer()
    assert total.ndim == 0 and total.item() > 0
    assert model.regularizer("a").item() < total.item()  # one scan's parts, plus the core
    total.backward()
    assert model.core.layers[0][0].weight.grad.abs().sum() > 0  # Laplace on the kernels
    for key in ("scan0", "scan1"):
        assert model.readouts[key].features.grad.abs().sum() > 0  # L1 on feature weights


def _trial_inputs(scan: Scan, tier: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    trials = np.flatnonzero(scan.tier_mask(tier))
    return scan.images[scan.trial_index()[trials]], scan.behavior[trials], scan.responses[trials]


def _mean_corr(result: FitResult, scan: Scan, tier: str = "validation") -> float:
    images, behavior, responses = _trial_inputs(scan, tier)
    return float(pearson(predict(result, scan.name, images, behavior), responses).mean())


@pytest.fixture(scope="module")
def scans() -> list[Scan]:
    return [
        synthetic_scan("a", n_images=350, n_validation=70, seed=0),
        synthetic_scan("b", n_images=350, n_validation=70, seed=1),
    ]


@pytest.fixture(scope="module")
def fitted(scans: list[Scan]) -> tuple[FitResult, MemoryRecorder]:
    recorder = MemoryRecorder()
    config = PredictorConfig(max_epochs=12, **TINY)
    return fit_predictor(scans, config, recorder=recorder, device="cpu"), recorder


def test_training_beats_an_untrained_model_and_ranks_neurons_by_noise(fitted, scans) -> None:
    result, _ = fitted
    neurons = {s.name: s.n_neurons for s in scans}
    untrained = dataclasses.replace(result, model=build_predictor(result.config, neurons).eval())
    trained = np.mean([_mean_corr(result, s) for s in scans])
    before = np.mean([_mean_corr(untrained, s) for s in scans])
    assert trained == pytest.approx(result.val_corr, abs=1e-4)  # predict ≡ the fit's own eval
    assert trained > before + 0.1, (trained, before)
    for scan in scans:
        v = result.v[scan.name]
        assert v.shape == (18,)
        assert v[:12].mean() > v[12:].mean() + 0.2, v  # low-noise vs pure-noise neurons
        # v is measured on the test tier: every trial of the oracle repeats
        images, behavior, responses = _trial_inputs(scan, "test")
        expected = pearson(predict(result, scan.name, images, behavior), responses)
        np.testing.assert_allclose(v, expected, atol=1e-5)


def test_fit_logs_every_epoch_and_keeps_the_best(fitted) -> None:
    result, recorder = fitted
    val = recorder.series("predictor/val_corr")
    assert len(val) == len(recorder.series("predictor/train_loss")) == result.epochs
    assert result.val_corr == max(val) == val[result.best_epoch]
    assert recorder.fractions[-1] == 1.0 and not result.model.training


def test_the_modulator_learns_the_running_speed_gain(fitted, scans) -> None:
    result, _ = fitted
    images = scans[0].images[:100]
    behavior = np.zeros((100, 4), np.float32)
    behavior[:, RUN] = 0.9
    fast = predict(result, "a", images, behavior)
    behavior[:, RUN] = 0.1
    slow = predict(result, "a", images, behavior)
    gain = fast[:, :12].mean() / slow[:, :12].mean()  # true gain: 1.85 / 0.65 ≈ 2.8
    assert gain > 1.5 and gain > fast[:, 12:].mean() / slow[:, 12:].mean()


def test_predict_without_behavior_holds_it_at_the_train_mean(fitted, scans) -> None:
    result, _ = fitted
    images = scans[1].images[:7]
    alone = predict(result, "b", images)
    assert alone.shape == (7, 18) and alone.dtype == np.float32 and (alone > 0).all()
    mean = np.tile(result.stats["b"].behavior_mean, (7, 1))
    np.testing.assert_allclose(alone, predict(result, "b", images, mean), rtol=1e-5)
    with pytest.raises(ValueError, match=r"\(N, 1, 36, 64\)"):
        predict(result, "b", images[:, 0])
    with pytest.raises(ValueError, match="behavior must be"):
        predict(result, "b", images, mean[:3])
    with pytest.raises(KeyError, match="unknown scan"):
        predict(result, "zzz", images)


@pytest.mark.parametrize("readout", READOUTS)
def test_fit_is_deterministic_given_the_seed(readout: str) -> None:
    scan = synthetic_scan(n_images=120, n_validation=30)
    config = PredictorConfig(readout=readout, max_epochs=2, **TINY)
    first, second = (fit_predictor([scan], config, device="cpu") for _ in range(2))
    # exact on purpose: the same fit twice in one process (determinism, not agreement)
    np.testing.assert_array_equal(first.v["s1"], second.v["s1"])
    for (k, a), b in zip(
        first.model.state_dict().items(), second.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), k


def test_a_scan_without_validation_tier_validates_on_held_out_train_trials() -> None:
    scan = synthetic_scan(n_images=120, n_validation=30)
    parts = {f.name: getattr(scan, f.name) for f in dataclasses.fields(scan)}
    parts["tiers"] = np.where(scan.tiers == "validation", "train", scan.tiers)
    result = fit_predictor([Scan(**parts)], PredictorConfig(max_epochs=1, **TINY))
    assert np.isfinite(result.val_corr) and result.v["s1"].shape == (18,)


def test_cancellation_raises_cancelled() -> None:
    recorder = MemoryRecorder(stop_after_steps=1)  # stop once one epoch is logged
    config = PredictorConfig(max_epochs=5, **TINY)
    with pytest.raises(Cancelled):
        fit_predictor([synthetic_scan(n_images=120, n_validation=30)], config, recorder=recorder)
    assert len(recorder.series("predictor/val_corr")) == 1


def test_unusable_scans_are_refused() -> None:
    scan = synthetic_scan(n_images=120, n_validation=30)
    with pytest.raises(ValueError, match="unique"):
        fit_predictor([scan, scan], PredictorConfig(max_epochs=1))
    parts = {f.name: getattr(scan, f.name) for f in dataclasses.fields(scan)}
    parts["responses"] = parts["responses"] - 1
    with pytest.raises(ValueError, match=r"predictor.loss: scan 's1' has negative responses "
                       r"\(min -1\): the Poisson loss is for spike counts.*gaussian"):
        fit_predictor([Scan(**parts)], PredictorConfig(max_epochs=1, loss="poisson"))


def test_df_over_f_is_fitted_with_a_gaussian_loss_and_a_linear_output(scans) -> None:
    from ml.neural.simulate import as_dff

    dff = [as_dff(s, seed=k) for k, s in enumerate(scans)]
    assert all((s.responses < 0).mean() > 0.3 for s in dff)
    config = PredictorConfig(max_epochs=12, **TINY)  # loss: auto
    result = fit_predictor(dff, config, device="cpu")
    assert result.loss == "gaussian" and result.model.output == "linear"
    neurons = {s.name: s.n_neurons for s in dff}
    untrained = dataclasses.replace(result, model=build_predictor(
        result.config, neurons, loss="gaussian").eval())
    trained = np.mean([_mean_corr(result, s) for s in dff])
    assert trained > np.mean([_mean_corr(untrained, s) for s in dff]) + 0.1
    for s in dff:  # it still tells the image-driven neurons from the pure-noise ones
        v = result.v[s.name]
        assert v[:12].mean() > v[12:].mean() + 0.2, v
    pred = predict(result, dff[0].name, dff[0].images[:50])
    assert (pred < 0).any()  # a linear output predicts dF/F's dips, as it should


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("batch_size", 0),
        ("lr", 0.0),
        ("lr", float("nan")),
        ("max_epochs", 1.5),
        ("readout", "linear"),
        ("input_kernel", 8),
        ("readout_layers", 4),
        ("use_shifter", "yes"),
        ("gamma_readout", -1.0),
    ],
)
def test_a_bad_config_value_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        PredictorConfig(**{field: value})
