"""The frequency part: ideal filters, Fourier basis images and energy bands as Fourier
analysis has them; a model that sees only low frequencies is blind to high-frequency
perturbations and follows the low-frequency class of a hybrid; the part through an
evaluation."""

import json
import math

import numpy as np
import pytest
import torch

from ml._validate import ConfigErrors
from ml.evaluate._fourier import (
    band_energy,
    bands,
    basis_image,
    high_pass,
    highest_radius,
    low_pass,
    radius,
)
from ml.evaluate.frequency import (
    energy_fractions,
    filter_accuracy,
    fourier_map,
    hybrid,
    hybrid_outcomes,
    map_frequencies,
    perturbation_spectrum,
    stored_perturbations,
)
from ml.evaluate.run import DEFAULT_PARTS, PARTS, EvaluateConfig, evaluate_model
from ml.evaluate.summary import frequency_table, robustness_table
from ml.recorder import MemoryRecorder

N = 32
SEEN = 3.0  # the blind model's cut-off
TEMPLATES = [(1, 0), (0, 1), (1, 1), (2, -1)]  # its classes' frequencies, all below SEEN


def _images(n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 2, N, N, generator=torch.Generator().manual_seed(seed))


def test_a_low_pass_at_the_highest_frequency_is_the_identity_and_at_0_the_mean():
    x = _images()
    assert torch.allclose(low_pass(x, highest_radius(N, N)), x.double(), atol=1e-12)
    assert highest_radius(N, N) == pytest.approx(N / 2 * math.sqrt(2))
    mean = x.double().mean((2, 3), keepdim=True).expand_as(x)
    assert torch.allclose(low_pass(x, 0.0), mean, atol=1e-12)
    # at the axes' Nyquist frequency N/2 only the corners beyond it go
    gone = torch.fft.fft2(x.double() - low_pass(x, N / 2)).abs()
    assert gone[..., radius(N, N) <= N / 2].max() < 1e-9
    assert gone[..., radius(N, N) > N / 2].max() > 1e-3
    # low and high add up to the image; the high-pass is zero-mean
    for c in (0.0, 2.5, 8.0):
        assert torch.allclose(low_pass(x, c) + high_pass(x, c), x.double(), atol=1e-12)
        assert high_pass(x, c).mean((2, 3)).abs().max() < 1e-12


def test_energy_fractions_sum_to_one_and_parseval_holds():
    x = _images() - 0.5
    e = band_energy(x)
    assert e.shape == (6, int(bands(N, N).max()) + 1)
    # numpy/torch's FFT is unnormalized: Σ|X|² = H·W · Σ|x|²
    assert torch.allclose(e.sum(1), x.double().square().sum((1, 2, 3)) * N * N, rtol=1e-10)
    frac = energy_fractions(x)
    np.testing.assert_allclose(frac.sum(1), 1.0, rtol=1e-12)
    assert np.isnan(energy_fractions(torch.zeros(1, 1, N, N))).all()


@pytest.mark.parametrize(("fy", "fx"), [(0, 0), (3, 0), (-5, 7), (-16, 0), (-16, -16),
                                        (2, -16)])
def test_a_fourier_basis_image_has_unit_norm_and_its_energy_at_its_frequency_only(fy, fx):
    b = basis_image(N, N, fy, fx)
    assert float(b.norm()) == pytest.approx(1.0)
    power = torch.fft.fft2(b).abs().square()
    support = {(int(i), int(j)) for i, j in torch.nonzero(power > 1e-9 * power.max())}
    assert support <= {(fy % N, fx % N), (-fy % N, -fx % N)}
    assert (fy % N, fx % N) in support
    # one image for a frequency and its mirror
    assert torch.equal(basis_image(N, N, -fy, -fx), b)
    k = int(torch.floor(torch.tensor(math.hypot(fy, fx)) + 0.5))
    frac = energy_fractions(b[None, None])[0]
    assert frac[k] == pytest.approx(1.0)


class Blind(torch.nn.Module):
    """Sees the images through an ideal low-pass at SEEN cycles per image, then matches
    one template per class: blind to everything above SEEN by construction."""

    input_size = (N, N)

    def __init__(self) -> None:
        super().__init__()
        self.templates = torch.stack([basis_image(N, N, a, b) for a, b in TEMPLATES]).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, H, W) → (B, 4)
        seen = low_pass(x, SEEN).float() - 0.5
        logits = torch.einsum("bchw,khw->bk", seen, self.templates)
        # rounding error of a zero projection is 0, a tie: argmax takes class 0
        return (logits * 1e3).round() / 1e3


def _blind_data(n: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """0.5 plus 2× the class's template plus weak high-frequency noise: within (0.2, 0.8),
    so no perturbation below clips and the filters stay exact."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % len(TEMPLATES)
    t = torch.stack([basis_image(N, N, a, b) for a, b in TEMPLATES])
    noise = high_pass(0.02 * torch.randn(n, 1, N, N, generator=gen, dtype=torch.float64),
                      SEEN + 2)
    x = (0.5 + 2.0 * t[y][:, None] + noise).float()
    assert 0.2 < float(x.min()) and float(x.max()) < 0.8
    return x, y


def test_a_low_frequency_model_is_blind_to_high_frequency_perturbations():
    model, (x, y) = Blind(), _blind_data()
    fmap = fourier_map(model, x, y, eps=4.0, seed=1, batch=97)
    assert fmap.clean_error == 0.0 and len(fmap.fy) == len(fmap.fx) == N
    err = np.array(fmap.error)
    fy, fx = np.meshgrid(fmap.fy, fmap.fx, indexing="ij")
    high = np.hypot(fy, fx) > SEEN
    assert (err[high] == 0).all()  # exact: the filter removes them before any decision
    # its templates' frequencies: +ε·U of another class outvotes the signal (2 < 4)
    at = {(a, b): err[fmap.fy.index(a), fmap.fx.index(b)] for a, b in TEMPLATES}
    assert all(0.25 < e < 1.0 for e in at.values())
    # a frequency and its mirror are one cell's value
    assert err[fmap.fy.index(-1), fmap.fx.index(0)] == at[(1, 0)]
    radial = fmap.radial()
    assert radial["error"][0] == err[fmap.fy.index(0), fmap.fx.index(0)]
    assert all(e == 0 for k, e in zip(radial["bands"], radial["error"], strict=True)
               if k > SEEN + 0.5)
    # deterministic given the seed; a coarser grid samples the same cells
    assert fourier_map(model, x, y, eps=4.0, seed=1, batch=500) == fmap
    coarse = fourier_map(model, x, y, eps=4.0, seed=1, size=8)
    assert coarse.fy == [-16, -12, -8, -4, 0, 4, 8, 12] == map_frequencies(N, 8)


def test_a_low_frequency_model_follows_the_low_frequency_class_of_a_hybrid():
    model, (x, y) = Blind(), _blind_data()
    out = hybrid_outcomes(model, x, y, cutoffs=(0.0, SEEN, 8.0, 23.0), pairs=30, seed=2,
                          batch=7)
    pairs = np.array(out["pairs"])
    assert (y[pairs[:, 0]] != y[pairs[:, 1]]).all() and out["n"] == 30
    assert out["low"][1:] == [1.0, 1.0, 1.0] and out["high"][1:] == [0.0, 0.0, 0.0]
    assert out["high"][0] == 1.0  # cut-off 0: only the mean is a's; b's class shows
    for k in range(4):
        assert out["low"][k] + out["high"][k] + out["other"][k] == pytest.approx(1.0)
    # the hybrid's low-pass is a's, its high-pass b's (no clipping here)
    h = hybrid(x[:2], x[2:4], 5.0)
    assert torch.allclose(low_pass(h, 5.0), low_pass(x[:2], 5.0), atol=1e-5)
    assert torch.allclose(high_pass(h, 5.0), high_pass(x[2:4], 5.0), atol=1e-5)
    acc = filter_accuracy(model, x, y, cutoffs=(0.0, SEEN, 23.0), batch=9)
    assert acc["lowpass"] == [0.25, 1.0, 1.0]  # the mean alone: its class 0 of four
    assert acc["highpass"] == [1.0, 0.25, 0.25]


def test_the_perturbation_spectrum_finds_a_perturbation_at_its_frequency():
    x, _ = _blind_data(8)
    adv = {"l2": (x.double() + 0.05 * basis_image(N, N, 5, 0)).numpy(),
           "linf": (x.double() + 0.01 * basis_image(N, N, 0, 12)).numpy()}
    dist = {"l2": np.array([0.05] * 6 + [np.inf, 0.0]), "linf": np.full(8, np.inf)}
    out, detail = perturbation_spectrum(x, adv, dist)
    row = out["norms"]["l2"]
    assert row["n"] == 6 and detail["l2"]["samples"] == list(range(6))
    assert row["median"][5] == pytest.approx(1.0) and row["centroid"] == pytest.approx(5.0)
    assert out["norms"]["linf"] is None  # nothing broken
    assert out["clean"]["median"][0] == 0.0  # the contrast: the mean removed
    assert sum(out["clean"]["mean"]) == pytest.approx(1.0)
    assert out["bands"][:3] == [0.0, 1.0, 2.0]


def test_another_input_size_is_refused_with_the_expected_size():
    model, (x, y) = Blind(), _blind_data(8)
    small = torch.nn.functional.interpolate(x, size=(16, 16))
    cfg = EvaluateConfig(parts=("frequency",), frequency_map_size=8, device="cpu")
    with pytest.raises(ValueError, match="takes 32×32 images, the data are 16×16"):
        evaluate_model(cfg, MemoryRecorder(), model, small, y, num_classes=4)
    # a model without the attribute: the caller names its size
    with pytest.raises(ValueError, match="takes 28×28 images"):
        evaluate_model(cfg, MemoryRecorder(), torch.nn.Identity(), x, y, num_classes=4,
                       input_size=(28, 28))
    with pytest.raises(ValueError, match="^frequency_map_size: 40"):
        evaluate_model(EvaluateConfig(parts=("frequency",), frequency_map_size=40,
                                      device="cpu"), MemoryRecorder(), model, x, y,
                       num_classes=4)


@pytest.mark.parametrize(("field", "value"), [
    ("frequency_cutoffs", (-1.0,)), ("frequency_cutoffs", ()), ("frequency_cutoffs", (1, 1)),
    ("frequency_cutoffs", (float("nan"),)), ("frequency_eps", 0.0),
    ("frequency_map_size", 0), ("frequency_map_samples", 0), ("frequency_samples", 0),
    ("hybrid_pairs", 0), ("frequency_seed", -1)])
def test_bad_frequency_settings_name_their_field(field, value):
    with pytest.raises(ConfigErrors, match=f"^{field}: "):
        EvaluateConfig(**{field: value})


def test_the_part_is_available_but_not_a_default():
    assert "frequency" in PARTS and "frequency" not in DEFAULT_PARTS
    assert EvaluateConfig(parts=["frequency"]).runs == ("frequency",)


def test_the_part_runs_through_an_evaluation_and_reads_the_minimal_parts_adversarials(
        trained):
    model, x, y = trained
    cfg = EvaluateConfig(parts=("noise", "minimal", "frequency"), attacks="quick",
                         norms=("l2",), n_samples=8, batch_size=64, noise_sigmas=(0.0,),
                         frequency_cutoffs=(0.0, 4.0, 23.0), frequency_samples=60,
                         frequency_map_size=8, frequency_map_samples=20, hybrid_pairs=24,
                         device="cpu")
    rec = MemoryRecorder()
    out = evaluate_model(cfg, rec, model, x, y, num_classes=10)
    f = out["frequency"]
    assert out["parts"] == ["noise", "minimal", "frequency"]
    assert f["image_size"] == [32, 32] and f["n"] == 60 and f["cutoffs"] == [0.0, 4.0, 23.0]
    assert len(f["lowpass"]) == len(f["highpass"]) == 3
    # above the highest frequency the low-pass is the image, at 0 the high-pass
    clean = out["noise"]["accuracy"][0]
    # (up to images whose top logits tie to rounding)
    assert f["lowpass"][2] == pytest.approx(f["highpass"][0], abs=0.02)
    assert f["lowpass"][2] == pytest.approx(clean, abs=0.05)
    assert f["lowpass"][0] < 0.3 and clean > 0.5
    fmap = f["fourier_map"]
    assert np.array(fmap["error"]).shape == (8, 8) and fmap["n"] == 20
    assert 0 <= fmap["mean_error"] <= 1 and fmap["eps"] == 4.0
    hyb = f["hybrid"]
    assert hyb["n"] == 24 and "pairs" not in hyb
    # above the highest frequency a hybrid is its low-frequency image; at cut-off 0 the
    # high-frequency one with the other's mean luminance
    assert hyb["low"][2] >= 0.95 and hyb["high"][0] > 0.5
    spec = f["spectrum"]
    assert f["spectrum_skipped"] is None and spec["norms"]["l2"]["n"] > 0
    assert sum(spec["norms"]["l2"]["mean"]) == pytest.approx(1.0)
    assert rec.series("lowpass_acc") == f["lowpass"]
    assert rec.series("frequency_cutoff") == f["cutoffs"]
    assert rec.series("hybrid_low") == hyb["low"]
    assert rec.series("fourier_error_mean") == [fmap["mean_error"]]
    assert rec.series("spectrum_centroid_l2") == [spec["norms"]["l2"]["centroid"]]
    stored = json.loads(rec.artifacts["frequency.json"][0])
    assert len(stored["hybrid_pairs"]) == 24 and len(stored["sample_ids"]) == 60
    assert len(stored["spectrum"]["l2"]["fractions"]) == spec["norms"]["l2"]["n"]
    # the stored adversarials give the same spectrum as the in-memory result
    again, _ = perturbation_spectrum(*stored_perturbations(rec.artifacts["adversarials.npz"][0],
                                                           x))
    assert again["norms"]["l2"]["median"] == pytest.approx(spec["norms"]["l2"]["median"])
    json.dumps(out)  # JSON-able as the store keeps it

    # without the minimal part it says why there is no spectrum, and the study summary
    # averages the curves over seeds
    alone = evaluate_model(EvaluateConfig(**{**_fields(cfg), "parts": ("frequency",)}),
                           MemoryRecorder(), model, x, y, num_classes=10)["frequency"]
    assert alone["spectrum"] is None and "minimal part did not run" in alone["spectrum_skipped"]
    assert alone["lowpass"] == f["lowpass"] and alone["fourier_map"] == fmap  # seeded
    evals = [{"id": i, "target": "none", "alpha": 0, "backbone": "small_cnn",
              "dataset": "digits32", "seed": i, "result": {"frequency": r}}
             for i, r in enumerate([f, alone])]
    (row,) = frequency_table(evals)
    assert row["run_ids"] == [0, 1] and row["target"] == "none"
    assert "frequency" not in robustness_table(evals)[0]  # its schema is the API's
    freq = row["frequency"]
    assert freq["cutoffs"] == f["cutoffs"] and freq["n"] == 2
    assert freq["lowpass"]["mean"] == pytest.approx(f["lowpass"])
    assert freq["lowpass"]["sem"] == pytest.approx([0, 0, 0])
    assert freq["hybrid"]["low"]["mean"] == pytest.approx(hyb["low"])
    assert np.array(freq["fourier_map"]["mean"]).shape == (8, 8)
    assert freq["spectrum"]["l2"]["n"] == 1  # one member had a spectrum
    assert freq["spectrum_bands"] == spec["bands"]  # where its band fractions lie
    assert freq["spectrum"]["l2"]["median"]["mean"] == pytest.approx(spec["norms"]["l2"]["median"])


def _fields(cfg: EvaluateConfig) -> dict:
    import dataclasses

    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
