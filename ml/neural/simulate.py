"""A simulated mouse-V1 recording: the offline default, with a known ground truth.

Model neurons have Gabor receptive fields at varied position, orientation, spatial
frequency and phase. Simple cells half-square one linear filter, complex cells sum a
quadrature pair (energy model); both are divisively normalised by the contrast energy
around their receptive field (Heeger 1992). On each trial the eyes sit somewhere else
(pupil position shifts the image on the retina), running and pupil size scale each
neuron's gain, an unobserved shared state scales everyone, and the response is drawn
from a Gamma distribution whose variance grows with the rate (Fano factor), so noise
scales with the rate as in deconvolved calcium traces.

The protocol defaults to the paper's: 5,100 images, 100 oracle images shown 10× (6,000
trials per scan), several scans sampling different neurons of one population. The
noise-free similarity S_true (Eq. 2 on noise-free responses at mean behaviour and centred
gaze, with each neuron's true SNR weight) is returned so denoising can be measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from annotated_types import Ge, Gt, Le

from ml._validate import validate_config
from ml.neural.estimators import unit_vectors
from ml.neural.scan import Scan
from ml.neural.stimuli import STIMULUS_SETS
from ml.neural.target import average_factors

H, W = 36, 64


@dataclass(frozen=True, kw_only=True)
class SimulationConfig:
    """The simulated experiment; defaults follow the paper's protocol."""

    n_images: Annotated[int, Ge(10)] = 5100
    n_oracle: Annotated[int, Ge(2)] = 100
    oracle_repeats: Annotated[int, Ge(2)] = 10
    n_scans: Annotated[int, Ge(1), Le(32)] = 4
    neurons_per_scan: Annotated[int, Ge(2)] = 1500
    complex_fraction: Annotated[float, Ge(0.0), Le(1.0)] = 0.5
    fano: Annotated[float, Gt(0.0)] = 1.5  # trial variance / mean rate
    shared_noise: Annotated[float, Ge(0.0)] = 0.25  # sd of the unobserved log-gain
    running_gain: Annotated[float, Ge(0.0)] = 0.3  # sd across neurons of the run effect
    pupil_gain: Annotated[float, Ge(0.0)] = 0.15
    eye_shift_px: Annotated[float, Ge(0.0)] = 1.5  # sd of the image shift from gaze
    # sd of log peak rate across neurons; 0.5 let a few neurons of one scan dominate its
    # SNR-weighted similarity (ΔS_scan sd 0.147 vs 0.016 at 0.25, 4 scans × 1,500)
    amplitude_spread: Annotated[float, Ge(0.0)] = 0.25
    validation_fraction: Annotated[float, Gt(0.0), Le(0.5)] = 0.1
    # the images shown: patches of photographs (the paper showed ImageNet photographs),
    # or dead-leaves scenes — the kind of image of the ``leaves32`` task, none of its images
    stimuli: Literal["photographs", "leaves"] = "photographs"
    seed: int = 0

    def __post_init__(self) -> None:
        validate_config(self)
        if self.n_oracle >= self.n_images:
            raise ValueError(f"n_oracle: {self.n_oracle} must be below n_images")


@dataclass(frozen=True, eq=False)
class SimulatedRecording:
    """Scans plus ground truth.

    Attributes:
        scans: one :class:`Scan` per simulated recording session.
        truth: (n_images, D) unit-vector factor of S_true, rows in ``image_ids`` order.
        image_ids: (n_images,) ids shared by every scan.
        oracle_ids: ids of the repeated images.
    """

    scans: list[Scan]
    truth: np.ndarray
    image_ids: np.ndarray
    oracle_ids: np.ndarray

    def s_true(self, ids: np.ndarray) -> np.ndarray:
        """S_true among the given image ids, (n, n) float32."""
        rows = np.searchsorted(self.image_ids, ids)
        f = self.truth[rows]
        return f @ f.T


@dataclass(frozen=True)
class _Population:
    """Receptive-field parameters of the neurons of one scan."""

    filters: np.ndarray  # (2, A, H*W): quadrature pair; simple cells use [0]
    window: np.ndarray  # (A, H*W): normalisation pool
    is_complex: np.ndarray  # (A,) bool
    c50: np.ndarray  # (A,)
    amplitude: np.ndarray  # (A,)
    baseline: np.ndarray  # (A,)
    beta_run: np.ndarray  # (A,)
    beta_pupil: np.ndarray  # (A,)


def _gabors(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(2, n, H·W) unit-norm quadrature Gabor pairs and (n, H·W) normalisation pools."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    cx = rng.uniform(8, W - 8, n)[:, None, None]
    cy = rng.uniform(6, H - 6, n)[:, None, None]
    theta = rng.uniform(0, np.pi, n)[:, None, None]
    # mouse V1 prefers ~0.04 cycles/degree; at ~1.9°/pixel that is ~0.08 cycles/pixel
    freq = np.exp(rng.normal(np.log(0.08), 0.35, n))[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, n)[:, None, None]
    sigma = (0.45 / freq) * np.exp(rng.normal(0, 0.15, n))[:, None, None]
    aspect = rng.uniform(0.6, 1.0, n)[:, None, None]
    u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
    v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
    envelope = np.exp(-(u**2 + (aspect * v) ** 2) / (2 * sigma**2))
    pair = np.stack([
        envelope * np.cos(2 * np.pi * freq * u + phase),
        envelope * np.sin(2 * np.pi * freq * u + phase),
    ])  # (2, n, H, W)
    pair /= np.linalg.norm(pair.reshape(2, n, -1), axis=2)[:, :, None, None]
    pool = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (2.0 * sigma) ** 2))
    pool /= pool.reshape(n, -1).sum(axis=1)[:, None, None]
    return pair.reshape(2, n, -1), pool.reshape(n, -1)


def _energy(contrast: np.ndarray, filters: np.ndarray, is_complex: np.ndarray) -> np.ndarray:
    """(B, A) half-squared (simple) or quadrature energy (complex) filter outputs."""
    a = filters.shape[1]
    lin = contrast.astype(np.float32) @ filters.reshape(2 * a, -1).T  # (B, 2A), one GEMM
    even, odd = lin[:, :a], lin[:, a:]
    return np.where(is_complex, even**2 + odd**2, np.maximum(even, 0) ** 2)


def _drive(pop: _Population, images: np.ndarray, mean_luminance: float) -> np.ndarray:
    """Noise-free rates (B, A) to flattened images (B, H*W) at unit gain."""
    contrast = images - mean_luminance
    energy = _energy(contrast, pop.filters, pop.is_complex)
    pooled = (contrast**2) @ pop.window.T  # (B, A) local contrast energy
    return pop.baseline + pop.amplitude * energy / (pop.c50**2 + energy + 4.0 * pooled)


def _population(rng: np.random.Generator, n: int, cfg: SimulationConfig,
                calibration: np.ndarray, mean_luminance: float) -> _Population:
    filters, window = (a.astype(np.float32) for a in _gabors(rng, n))
    is_complex = rng.random(n) < cfg.complex_fraction
    # semi-saturation at a random quantile of each neuron's own drive, so every neuron
    # uses its dynamic range on natural images instead of sitting at 0 or saturating
    energy = _energy(calibration - mean_luminance, filters, is_complex)
    c50 = np.sqrt(_per_column_quantile(energy, rng.uniform(0.5, 0.9, n)))
    return _Population(
        filters=filters, window=window, is_complex=is_complex,
        c50=np.maximum(c50, 1e-3).astype(np.float32),
        amplitude=np.exp(rng.normal(np.log(2.0), cfg.amplitude_spread, n)).astype(np.float32),
        baseline=np.exp(rng.normal(np.log(0.05), 0.5, n)).astype(np.float32),
        beta_run=rng.normal(0.0, cfg.running_gain, n) + cfg.running_gain / 2,
        beta_pupil=rng.normal(0.0, cfg.pupil_gain, n),
    )


def _per_column_quantile(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Quantile q[a] of column a (linear interpolation, as ``np.quantile``), in O(B·A)."""
    s = np.sort(x, axis=0)
    pos = q * (len(s) - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(s) - 1)
    cols = np.arange(x.shape[1])
    return s[lo, cols] + (s[hi, cols] - s[lo, cols]) * (pos - lo)


def _behavior(rng: np.random.Generator, t: int) -> np.ndarray:
    """(T, 4) pupil_x, pupil_y, pupil_size, running_speed with bouts and drift."""
    running = np.empty(t, dtype=bool)
    state = False
    for k in range(t):  # two-state Markov chain: bouts of running and sitting
        if rng.random() < (0.05 if state else 0.03):
            state = not state
        running[k] = state
    speed = np.where(running, rng.lognormal(np.log(15.0), 0.4, t), rng.exponential(0.5, t))
    drift = np.cumsum(rng.normal(0, 0.05, t))
    drift -= np.linspace(drift[0], drift[-1], t)  # slow arousal drift, no net trend
    size = np.exp(np.log(30.0) + 0.15 * running + 0.1 * drift + rng.normal(0, 0.05, t))
    gaze = np.zeros((t, 2))
    for k in range(1, t):  # fixational drift with occasional saccades
        jump = rng.random() < 0.1
        gaze[k] = rng.normal(0, 1.0, 2) if jump else 0.9 * gaze[k - 1] + rng.normal(0, 0.2, 2)
    pupil_xy = np.array([160.0, 120.0]) + 8.0 * gaze  # camera pixels
    return np.column_stack([pupil_xy, size, speed]).astype(np.float32)


def _shift(images: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Images (T, H, W) moved by (T, 2) (dy, dx) pixels, bilinear, edges repeated."""
    from scipy.ndimage import shift as nd_shift

    pairs = zip(images, shifts, strict=True)
    return np.stack([nd_shift(im, s, order=1, mode="nearest") for im, s in pairs])


def simulate(config: SimulationConfig | None = None) -> SimulatedRecording:
    """Simulate ``config.n_scans`` scans of one V1 population viewing natural images.

    Args:
        config: the experiment; ``SimulationConfig()`` is the paper's protocol.

    Returns:
        The scans and S_true (:class:`SimulatedRecording`).
    """
    cfg = config or SimulationConfig()
    rng = np.random.default_rng(cfg.seed)
    images = STIMULUS_SETS[cfg.stimuli](cfg.n_images, cfg.seed)  # (N, 1, H, W)
    flat = images.reshape(cfg.n_images, -1)
    mean_lum = float(flat.mean())
    image_ids = np.arange(cfg.n_images, dtype=np.int64)
    oracle_ids = np.sort(rng.choice(image_ids, cfg.n_oracle, replace=False))
    singles = np.setdiff1d(image_ids, oracle_ids)
    calibration = flat[rng.choice(cfg.n_images, min(500, cfg.n_images), replace=False)]
    scans, truth = [], []
    for h in range(cfg.n_scans):
        pop = _population(rng, cfg.neurons_per_scan, cfg, calibration, mean_lum)
        trial_ids = rng.permutation(
            np.concatenate([singles, np.repeat(oracle_ids, cfg.oracle_repeats)])
        )
        t = trial_ids.size
        behavior = _behavior(rng, t)
        # gaze moves the image on the retina: pupil pixels → visual-field pixels
        z_xy = (behavior[:, :2] - behavior[:, :2].mean(0)) / behavior[:, :2].std(0)
        shifted = _shift(images[trial_ids, 0], z_xy[:, ::-1] * cfg.eye_shift_px)
        rates = _drive(pop, shifted.reshape(t, -1), mean_lum)  # (T, A)
        z_run = (behavior[:, 3] - behavior[:, 3].mean()) / behavior[:, 3].std()
        z_pupil = (behavior[:, 2] - behavior[:, 2].mean()) / behavior[:, 2].std()
        gain = np.exp(np.outer(z_run, pop.beta_run) + np.outer(z_pupil, pop.beta_pupil))
        latent = np.exp(rng.normal(0, cfg.shared_noise, t) - cfg.shared_noise**2 / 2)
        mean = rates * gain * latent[:, None]
        responses = rng.gamma(mean / cfg.fano, cfg.fano).astype(np.float32)
        tiers = np.full(t, "train", dtype=object)
        is_oracle = np.isin(trial_ids, oracle_ids)
        tiers[is_oracle] = "test"
        single_trials = np.flatnonzero(~is_oracle)
        n_val = int(round(cfg.validation_fraction * single_trials.size))
        tiers[rng.choice(single_trials, n_val, replace=False)] = "validation"
        first = h * cfg.neurons_per_scan
        scans.append(Scan(
            name=f"sim-scan{h + 1}", images=images, image_ids=image_ids,
            trial_image_ids=trial_ids, responses=responses, behavior=behavior,
            tiers=tiers.astype(str), oracle_ids=oracle_ids,
            neurons={
                "unit_ids": np.arange(first, first + cfg.neurons_per_scan),
                "is_complex": pop.is_complex,
            },
        ))
        truth.append(_true_factor(pop, flat, mean_lum, cfg, rng))
    return SimulatedRecording(scans, average_factors(truth), image_ids, oracle_ids)


def _true_factor(pop: _Population, flat: np.ndarray, mean_lum: float,
                 cfg: SimulationConfig, rng: np.random.Generator) -> np.ndarray:
    """Eq. 2 on noise-free rates (centred gaze, mean behaviour) with true SNR weights."""
    clean = np.concatenate([
        _drive(pop, flat[i:i + 1000], mean_lum) for i in range(0, len(flat), 1000)
    ])  # (N, A)
    # true η²: trial variance of the generative model at centred gaze, by Monte Carlo
    # over its behaviour and shared-noise distribution (20 draws per image)
    z = rng.normal(size=(20, 2))
    gain = np.exp(z[:, :1] * pop.beta_run + z[:, 1:] * pop.beta_pupil)  # (20, A)
    latent_var = np.exp(cfg.shared_noise**2) - 1.0
    g2 = (gain**2).mean(0) * (1 + latent_var)
    g1 = gain.mean(0)
    noise = (cfg.fano * clean * g1 + clean**2 * (g2 - g1**2)).mean(0)  # E_i[Var_t]
    signal = (clean * g1).var(0)
    weights = np.sqrt(signal / np.maximum(noise, 1e-12))
    return unit_vectors(clean, weights=weights)


def as_dff(scan: Scan, *, seed: int = 0, gain: float = 0.3, noise: float = 0.1) -> Scan:
    """The scan as a 2-photon file would hold it: fluorescence F = F0 (1 + gain · events)
    plus Gaussian noise of ``noise`` · F0 (F0 drawn per neuron), then dF/F = (F − F0′) /
    F0′ with F0′ each neuron's median F, negative on every quiet trial. A measurement
    model for exercising the real-valued path, not a model of any indicator's kinetics."""
    import dataclasses

    rng = np.random.default_rng(seed)
    f0 = rng.uniform(50, 150, scan.n_neurons)
    f = f0 * (1 + gain * scan.responses) + rng.normal(0, noise * f0, scan.responses.shape)
    base = np.median(f, axis=0)
    parts = {k.name: getattr(scan, k.name) for k in dataclasses.fields(scan)}
    return Scan(**{**parts, "responses": ((f - base) / base).astype(np.float32)})
