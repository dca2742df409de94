"""An evaluation of one trained model, reported through a Recorder, in the parts its
config picks: the noise-robustness curve, minimal adversarial perturbations, AutoAttack
robust accuracy at fixed ε and accuracy under CIFAR-10-C's common corruptions (the
default four); and, when asked, whether the attacks are sound (:mod:`ml.evaluate.
soundness`), where the robustness comes from (:mod:`ml.evaluate.mechanism`) and what it
rests on by spatial frequency (:mod:`ml.evaluate.frequency`).

Records: ``noise_acc`` and ``noise_sigma`` (step k = the k-th σ), ``median_<norm>`` and
``mean_<norm>`` (step 0), ``budget_median_<norm>`` (step = attack iterations spent so far:
the per-budget curve, Fig. 5), ``clean_acc_samples``, ``autoattack_<norm>`` (step k = the
k-th ε), ``corruption_acc`` (step 0, the mean over the benchmark corruptions chosen);
``soundness_hsja_<norm>``, ``soundness_transfer_<norm>`` (medians, step 0) and
``soundness_warnings_<norm>`` (warning signs, 0 when sound); ``grad_l2_median``,
``grad_l1_median``, ``subspace_share_<norm>`` and ``subspace_share_random`` (medians,
step 0), ``tap_r`` (step k = the k-th tap); ``frequency_cutoff``, ``lowpass_acc``,
``highpass_acc``, ``hybrid_low`` and ``hybrid_high`` (step k = the k-th cut-off),
``fourier_error_mean`` (the map's mean error, step 0), ``spectrum_centroid_clean`` and
``spectrum_centroid_<norm>`` (median energy-weighted frequency, step 0);
``alignment/<headline>`` (:data:`ml.evaluate.alignment_inputs.HEADLINES`: the mean over
the similarity run's scans, step 0); ``percept/<headline>`` (the percept part's headline
numbers, step 0: ``v1_adv_l2``, ``v1_rand_l2``, ``model_adv_l2``, ``model_rand_l2``,
``logits_adv_l2``, ``specificity_l2``; another norm's name without L2).
Artifacts: ``samples.csv`` (one row per sample × attack run: sample id, label, attack,
hyperparameters, norm, distances, success), ``minimal.csv`` (per sample: minimal distance
per norm and the run that found it), ``adversarials.npz`` (the minimal adversarials,
re-verified), ``autoattack.csv`` (per sample × threat model × ε: the component that broke
it, its distance, the minimal perturbation), ``corruptions.csv`` (accuracy per corruption
× severity), ``soundness.json`` (the soundness part's tables, verdicts and per-sample
distances), ``mechanism.json`` (the mechanism part's measures with their per-sample
values), ``frequency.json`` (the frequency part's result with the per-sample perturbation
spectra, the images' ids and the hybrid pairs), ``alignment.json`` (the alignment part's
result per scan), ``percept.json`` (the percept part's result with its per-sample
distances), ``provenance.json``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
import torch
from annotated_types import Ge, Gt, Le

from ml import artifacts
from ml._validate import Problems, validate_config
from ml.evaluate.alignment import AlignmentConfig
from ml.evaluate.alignment_inputs import HEADLINES, AlignmentInputs, align_scans
from ml.evaluate.alignment_inputs import check_inputs as check_alignment
from ml.evaluate.attacks import NORMS, schedule
from ml.evaluate.autoattack import (
    COMPONENTS,
    DEFAULT_EPSILONS,
    STANDARD_QUERIES,
    STANDARD_STEPS,
    autoattack,
    check_epsilons,
    inconsistencies,
)
from ml.evaluate.corruptions import (
    CORRUPTIONS,
    SEVERITIES,
    check_choice,
    corruption_accuracy,
)
from ml.evaluate.frequency import (
    DEFAULT_CUTOFFS,
    DEFAULT_EPS,
    check_size,
    expected_size,
    filter_accuracy,
    fourier_map,
    hybrid_outcomes,
    map_frequencies,
    perturbation_spectrum,
)
from ml.evaluate.mechanism import TapTarget, mechanism
from ml.evaluate.minimal import MinimalResult, minimal_perturbations
from ml.evaluate.noise import DEFAULT_SIGMAS, noise_curve
from ml.evaluate.percept import describe, luminance, percept, task_readout
from ml.evaluate.soundness import PROBED_NORMS, soundness
from ml.recorder import Recorder, flush
from ml.runtime import deterministic_mode, environment_info, full_precision, pick_device

log = logging.getLogger(__name__)
"""Each part's start and end (with its headline numbers and time), the noise curve's
points: the worker sends this logger's records to the run's log."""

DEFAULT_PARTS = ("noise", "minimal", "autoattack", "corruptions")
"""What an evaluation measures unless its config says otherwise."""
PARTS = (*DEFAULT_PARTS, "soundness", "mechanism", "frequency", "alignment", "percept")
"""Every part, in the order they run (soundness reads the minimal and AutoAttack parts,
mechanism, frequency and percept the minimal part's adversarials; alignment reads none)."""


@dataclass(frozen=True, kw_only=True)
class EvaluateConfig:
    """An evaluation of one trained model.

    ``train_run`` names the train run whose ``model.pt`` the service evaluates on that
    run's dataset (its test split). ``parts`` picks what runs; ``attacks: none`` (kept for
    older configs) leaves the minimal perturbations out as well.

    Attributes:
        train_run: the succeeded train run whose ``model.pt`` it evaluates.
        parts: what it measures: ``noise`` (accuracy under Gaussian noise, Fig. 4),
            ``minimal`` (minimal adversarial perturbations, Fig. 5 and 7), ``autoattack``
            (robust accuracy at fixed ε, the RobustBench protocol), ``corruptions``
            (CIFAR-10-C's common corruptions) — the default four —, ``soundness``
            (whether the minimal perturbations are the model's or its attacks' failure:
            the attacks' agreement, a decision-based and transfer attacks, AutoAttack's
            consistency; needs ``minimal``) and ``mechanism`` (input-gradient norms,
            the minimal perturbations' energy in the training images' principal
            subspace, each tapped layer's similarity to the target) and ``frequency``
            (accuracy under low- and high-pass filters, the Fourier sensitivity map,
            hybrid images, the minimal perturbations' spectrum; not a default: the map
            alone is a forward pass per frequency and image) and ``alignment`` (RSA,
            CKA and ridge FEVE of the tapped layers on ``similarity_run``'s held-out
            oracle images, each beside its ceiling, :mod:`ml.evaluate.alignment`; not a
            default; needs ``similarity_run``) and ``percept`` (how far the minimal
            adversarials move ``similarity_run``'s predicted V1 response against the
            model's own features and logits, beside a permuted control of the same norms,
            :mod:`ml.evaluate.percept`; not a default; needs ``minimal`` and
            ``similarity_run``).
        noise_sigmas: σ of the Gaussian noise added to the test images (Fig. 4), images
            in [0, 1].
        noise_seed: the noise drawn (the same for every model given the seed).
        attacks: the minimal-perturbation grid: ``paper`` (the supplement's, for a GPU),
            ``quick`` (a small one for a CPU) or ``none`` (no minimal perturbations).
        norms: the perturbation norms measured: any of linf, l2, l1, l0.
        n_samples: test images attacked (the supplement's 1,000), by the minimal search
            and by AutoAttack alike.
        sample_seed: which test images (the same for every model given the seed).
        repeats: runs of each attack setting with a random element (random starts, or
            Brendel & Bethge's starting point); empty: the grid's own (``paper``: the
            supplement's 5, ``quick``: 1).
        search_steps: bisection steps of each fixed-ε attack's per-image ε search.
        batch_size: images per attack batch.
        seed: the attacks' random starts.
        autoattack_eps: ε per threat model (``linf``, ``l2``) for AutoAttack, each in
            (0, 1] (RobustBench's CIFAR-10: L∞ 8/255, L2 0.5).
        autoattack_steps: iterations of APGD-CE, APGD-T and FAB-T (the standard: 100;
            fewer is recorded as a custom version).
        autoattack_queries: Square's queries (the standard: 5,000).
        corruptions: the common corruptions measured (CIFAR-10-C's 15, then its 4 extra).
        corruption_severities: severities 1–5 measured.
        corruption_samples: test images corrupted (CIFAR-10-C: all 10,000); the first of
            the split.
        corruption_seed: the corruptions drawn (the same for every model given the seed).
        corruption_source: ``generated`` here from the test split (any dataset), or the
            ``published`` CIFAR-10-C / CIFAR-100-C files of a CIFAR model (the folder
            ``CIFAR-10-C`` beside the CIFAR archive; RobustBench's corruption numbers).
        reference_run: a train run (another model of the same dataset, e.g. the None
            model of the same seed) whose gradient attacks' perturbations the
            ``soundness`` part transfers; empty: no transfer attacks.
        soundness_samples: the first samples of the minimal part's that HopSkipJump and
            the transfer attacks measure.
        hsja_steps: HopSkipJump's iterations (Chen et al.: 64; fewer for a CPU).
        hsja_gradient_evals: model decisions per HopSkipJump boundary-normal estimate at
            its first iteration (growing with √iteration, at most 10×).
        transfer_steps: bisection steps on the scale of each transferred perturbation.
        subspace_k: principal components of the training images spanning the task's
            image subspace (``mechanism``); below the image size.
        similarity_run: a similarity run whose ``neural-model`` target the
            ``mechanism`` part compares each tapped layer with (on the split the model's
            training held out); empty: the target the model was trained toward, if any.
        frequency_cutoffs: cut-offs of the low- and high-pass filters and the hybrid
            images, in cycles per image (radial, ideal filters), each ≥ 0.
        frequency_samples: test images the filters and hybrids use (drawn with
            ``frequency_seed``).
        frequency_map_size: frequencies per axis of the Fourier sensitivity map, evenly
            over −N/2 … N/2 − 1 (the image size: every one); at most the image size.
        frequency_map_samples: the first of those images the map perturbs.
        frequency_eps: L2 norm of each Fourier basis perturbation (Yin et al. 2019: 4 on
            CIFAR-10), over the whole image.
        hybrid_pairs: hybrid images per cut-off (low frequencies of one class, high of
            another, both classified correctly).
        frequency_seed: the images, the perturbations' signs and the pairs.
        alignment_replicates: the alignment part's bootstrap replicates over stimuli
            (the RSA intervals; 0: none), and the percept part's over samples.
        alignment_folds: k of its k-fold ridge readout over the held-out stimuli.
        alignment_seed: its bootstrap, folds and split halves; the percept part's
            bootstrap (its controls' permutations follow ``seed``).
        device: ``auto`` takes CUDA when the worker has it.
    """

    train_run: Annotated[int, Ge(1)] | None = None
    parts: tuple[str, ...] = DEFAULT_PARTS
    noise_sigmas: tuple[float, ...] = DEFAULT_SIGMAS
    noise_seed: Annotated[int, Ge(0)] = 0
    attacks: Literal["paper", "quick", "none"] = "paper"
    norms: tuple[str, ...] = NORMS
    n_samples: Annotated[int, Ge(1), Le(100_000)] = 1000
    sample_seed: Annotated[int, Ge(0)] = 0
    repeats: Annotated[int, Ge(1), Le(20)] | None = None
    search_steps: Annotated[int, Ge(1), Le(30)] = 10
    batch_size: Annotated[int, Ge(1), Le(4096)] = 250
    seed: Annotated[int, Ge(0)] = 0
    autoattack_eps: dict[str, tuple[float, ...]] = field(
        default_factory=lambda: dict(DEFAULT_EPSILONS))
    autoattack_steps: Annotated[int, Ge(1), Le(1000)] = STANDARD_STEPS
    autoattack_queries: Annotated[int, Ge(1), Le(100_000)] = STANDARD_QUERIES
    corruptions: tuple[str, ...] = tuple(CORRUPTIONS)
    corruption_severities: tuple[int, ...] = SEVERITIES
    corruption_samples: Annotated[int, Ge(1), Le(100_000)] = 10_000
    corruption_seed: Annotated[int, Ge(0)] = 0
    corruption_source: Literal["generated", "published"] = "generated"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    reference_run: Annotated[int, Ge(1)] | None = None
    soundness_samples: Annotated[int, Ge(1), Le(10_000)] = 50
    hsja_steps: Annotated[int, Ge(1), Le(1000)] = 16
    hsja_gradient_evals: Annotated[int, Ge(1), Le(100_000)] = 50
    transfer_steps: Annotated[int, Ge(1), Le(50)] = 10
    subspace_k: Annotated[int, Ge(1), Le(100_000)] = 64
    similarity_run: Annotated[int, Ge(1)] | None = None
    frequency_cutoffs: tuple[float, ...] = DEFAULT_CUTOFFS
    frequency_samples: Annotated[int, Ge(1), Le(100_000)] = 1000
    frequency_map_size: Annotated[int, Ge(1), Le(512)] = 32
    frequency_map_samples: Annotated[int, Ge(1), Le(10_000)] = 200
    frequency_eps: Annotated[float, Gt(0), Le(1000)] = DEFAULT_EPS
    hybrid_pairs: Annotated[int, Ge(1), Le(100_000)] = 500
    frequency_seed: Annotated[int, Ge(0)] = 0
    alignment_replicates: Annotated[int, Ge(0), Le(10_000)] = 200
    alignment_folds: Annotated[int, Ge(2), Le(100)] = 5
    alignment_seed: Annotated[int, Ge(0)] = 0

    def __post_init__(self) -> None:
        for name in ("parts", "noise_sigmas", "norms", "corruptions", "corruption_severities",
                     "frequency_cutoffs"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        validate_config(self)
        problems = Problems()  # every field's problem in one answer
        with problems:
            bad = [p for p in self.parts if p not in PARTS]
            if bad or not self.parts or len(set(self.parts)) != len(self.parts):
                raise ValueError(f"parts: {bad or list(self.parts)} given; choose one or more "
                                 f"of {list(PARTS)}, each once")
            if "soundness" in self.parts and "minimal" not in self.runs:
                why = "attacks: none leaves it out" if "minimal" in self.parts else "add it"
                raise ValueError(f"parts: soundness checks the minimal part's attacks, which "
                                 f"does not run ({why})")
            if "percept" in self.parts and "minimal" not in self.runs:
                why = "attacks: none leaves it out" if "minimal" in self.parts else "add it"
                raise ValueError(f"parts: percept reads the minimal part's adversarials, "
                                 f"which does not run ({why})")
        with problems:
            if "alignment" in self.parts and self.similarity_run is None:
                raise ValueError("similarity_run: the alignment part compares the model "
                                 "with a similarity run's held-out stimuli; name one")
        with problems:
            if "percept" in self.parts and self.similarity_run is None:
                raise ValueError("similarity_run: the percept part reads a similarity "
                                 "run's fitted predictor of V1; name one")
        with problems:
            sig = self.noise_sigmas
            if not sig or any(isinstance(s, bool) or not isinstance(s, int | float)
                              or not math.isfinite(s) or s < 0 for s in sig):
                raise ValueError(f"noise_sigmas: need one or more finite σ ≥ 0, got {list(sig)}")
        with problems:
            bad = sorted(set(self.norms) - set(NORMS))
            if bad or not self.norms:
                raise ValueError(f"norms: {bad or 'none'} given; choose from {list(NORMS)}")
        with problems:
            object.__setattr__(self, "autoattack_eps", check_epsilons(self.autoattack_eps))
        with problems:
            check_choice(self.corruptions, self.corruption_severities)
        with problems:
            cut = self.frequency_cutoffs
            if not cut or any(isinstance(c, bool) or not isinstance(c, int | float)
                              or not math.isfinite(c) or c < 0 or c > 1000 for c in cut) \
                    or len(set(cut)) != len(cut):
                raise ValueError(f"frequency_cutoffs: need one or more distinct cut-offs "
                                 f"in [0, 1000] cycles per image, got {list(cut)}")
        problems.raise_any()

    @property
    def runs(self) -> tuple[str, ...]:
        """The parts that run, in order (``attacks: none`` drops ``minimal``)."""
        return tuple(p for p in PARTS if p in self.parts
                     and not (p == "minimal" and self.attacks == "none"))


def sample_ids(n_test: int, n_samples: int, seed: int) -> np.ndarray:
    """The fixed sample subset: the same test images for every model given the seed."""
    if n_test == 0:
        raise ValueError("samples: the test set is empty")
    k = min(n_samples, n_test)
    return np.sort(np.random.default_rng(seed).choice(n_test, size=k, replace=False))


def _minimal_csv(res: MinimalResult, norms: tuple[str, ...]) -> str:
    """Per sample its minimal distance and the run that found it, per norm. A run's label
    holds its hyperparameters ("LinfPGD(abs_stepsize=0.01, steps=50)"): the csv module
    quotes it, so every reader sees one column."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["sample_id", "label", "clean_correct",
                *[c for n in norms for c in (n, f"{n}_attack")]])
    for i, sid in enumerate(res.ids):
        vals = [str(int(sid)), str(int(res.labels[i])), str(int(res.clean_correct[i]))]
        for n in norms:
            d = res.best[n][i]
            vals += ["inf" if math.isinf(d) else f"{d:.8g}", res.best_attack[n][i]]
        w.writerow(vals)
    return out.getvalue()


class _Progress:
    """One fraction over the parts, each weighted by its estimated cost (gradient
    evaluations; a forward pass counts a third), with the time left at the rate so far."""

    def __init__(self, recorder: Recorder, weights: dict[str, float]) -> None:
        self.recorder, self.weights = recorder, weights
        self.total = sum(weights.values()) or 1.0
        self.done: dict[str, float] = dict.fromkeys(weights, 0.0)
        self.start = time.perf_counter()

    def part(self, name: str) -> Callable[[float, str], None]:
        def report(fraction: float, message: str) -> None:
            self.done[name] = self.weights[name] * min(max(fraction, 0.0), 1.0)
            f = sum(self.done.values()) / self.total
            elapsed = time.perf_counter() - self.start
            left = elapsed * (1 - f) / f if 0.01 < f < 1 else None
            eta = "" if left is None else f" · about {_duration(left)} left"
            self.recorder.progress(f, f"{message}{eta}")
        return report


@contextlib.contextmanager
def _part(name: str, recorder: Recorder, what: str) -> Iterator[list[str]]:
    """A part's log lines at its start and end (the block appends its headline numbers to
    the list it gets), and its points flushed at the end: they reach the store now,
    whatever the next part does."""
    log.info("%s: started (%s)", name, what)
    start = time.perf_counter()
    headline: list[str] = []
    yield headline
    log.info("%s: done in %s%s", name, _duration(time.perf_counter() - start),
             "".join(f"; {h}" for h in headline))
    flush(recorder)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _hsja_queries(steps: int, evals: int) -> float:
    """HopSkipJump's model decisions per sample: each iteration's boundary-normal estimate
    (``evals`` · √iteration, at most 10 · ``evals``) and about 25 for its step-size and
    binary searches."""
    return sum(min(evals * math.sqrt(s), 10 * evals) + 25 for s in range(1, steps + 1))


def _weights(config: EvaluateConfig, n_test: int, dim: int, *, reference: bool = False,
             n_train: int = 0, held_out: tuple[int, ...] = ()) -> dict[str, float]:
    n = min(config.n_samples, n_test)
    w: dict[str, float] = {}
    if "noise" in config.runs:
        w["noise"] = n_test * len(config.noise_sigmas) / 3
    if "minimal" in config.runs:
        runs = schedule(config.attacks, config.norms, repeats=config.repeats,  # type: ignore[arg-type]
                        search_steps=config.search_steps)
        w["minimal"] = n * sum(r.budget(dim) for r in runs)
    if "autoattack" in config.runs:
        per = config.autoattack_steps * 28 + config.autoattack_queries / 3  # CE, 9 T, 9 FAB
        w["autoattack"] = n * per * sum(len(e) for e in config.autoattack_eps.values())
    if "corruptions" in config.runs:
        w["corruptions"] = (min(config.corruption_samples, n_test) * len(config.corruptions)
                            * len(config.corruption_severities) * 2)  # generate + forward
    if "soundness" in config.runs:
        k = min(config.soundness_samples, n)
        probed = [m for m in PROBED_NORMS if m in config.norms]
        w["soundness"] = k * len(probed) * _hsja_queries(
            config.hsja_steps, config.hsja_gradient_evals) / 3
        if reference and probed:
            runs = schedule(config.attacks, probed, repeats=config.repeats,  # type: ignore[arg-type]
                            search_steps=config.search_steps)
            w["soundness"] += k * sum(r.budget(dim) for r in runs)
            w["soundness"] += k * len(probed) * (12 + config.transfer_steps) / 3
    if "mechanism" in config.runs:  # a gradient per sample, a pass over the training set
        w["mechanism"] = n + n_train / 3 + 200
    if "frequency" in config.runs:  # forward passes only
        k = min(config.frequency_samples, n_test)
        cells = config.frequency_map_size ** 2 / 2 + 2  # a frequency and its mirror: once
        w["frequency"] = (2 * k * len(config.frequency_cutoffs)
                          + cells * min(config.frequency_map_samples, k)
                          + config.hybrid_pairs * len(config.frequency_cutoffs)) / 3
    if "alignment" in config.runs:  # per scan of n held-out stimuli: a forward pass each,
        # and the analysis (bootstrap, split halves, ridge folds) ~ n² per replicate/fit
        w["alignment"] = sum(n / 3 + n * n * (config.alignment_replicates + 50
                                              + 17 * config.alignment_folds) / _PAIRS_PER_PASS
                             for n in (held_out or (100,)))
    if "percept" in config.runs:  # per norm and sample: the clean image, its adversarial
        # and its control through the model and each scan's predictor (forward passes);
        # the units: the same for up to 256 clean images
        scans = len(held_out) or 1
        w["percept"] = (n * len(config.norms) * 3 + min(n, 256)) * (1 + scans) / 3
    return w


_PAIRS_PER_PASS = 1000.0
"""Stimulus pairs × (replicates + splits + fits) the alignment analysis gets through in
the time of one image's forward pass (the progress estimate's unit), roughly: measured on
2 loaded CPUs at the CPU preset's sizes (2 scans × 50 oracle images × 10 repeats, 800
neurons, a width-8 ResNet18's 5 taps, the default 200 replicates and 5 folds: 6–20 s per
scan, a forward pass 3.6 ms per image)."""


def evaluate_model(config: EvaluateConfig, recorder: Recorder, model: torch.nn.Module,
                   test_images: torch.Tensor, test_labels: torch.Tensor, *,
                   num_classes: int,
                   published: Callable[[str, int, int], torch.Tensor] | None = None,
                   reference: torch.nn.Module | None = None,
                   train_images: torch.Tensor | None = None,
                   tap_target: TapTarget | None = None,
                   input_size: tuple[int, int] | None = None,
                   alignment_inputs: AlignmentInputs | None = None) -> dict[str, Any]:
    """The parts the config picks, in order: the noise curve on the whole test split,
    minimal perturbations and AutoAttack on the sample set, corruptions on the first
    ``corruption_samples`` test images.

    Returns:
        A JSON-able summary: ``parts``; the noise curve; per-norm medians and means of the
        minimal distances (None when a sample was never broken: the median when more
        than half); unbroken counts; ``autoattack`` per threat model (robust accuracy per
        ε and after each component, the samples inconsistent with the minimal search);
        ``corruptions`` (accuracy per corruption × severity and their mean); seconds.

    ``published`` (corruption, severity, n) → the published corrupted first ``n`` test
    images (:func:`ml.data.cifar_c.published_source`), for ``corruption_source:
    published``. ``reference``: the model the ``soundness`` part transfers perturbations
    from (images in, logits out; the config's ``reference_run``). ``train_images``: the
    training split, whose principal components the ``mechanism`` part projects on;
    ``tap_target``: the model's checkpoint and the target its layers are compared with.
    ``input_size``: the (H, W) the model was trained on (default: its ``input_size``
    attribute, if any); the ``frequency`` part refuses test images of another size before
    any part runs. ``alignment_inputs``: the model's checkpoint and the similarity run's
    held-out stimuli (:func:`ml.evaluate.alignment_inputs.load_heldout`) the
    ``alignment`` part compares it with; with the similarity run's predictor, the
    ``percept`` part's readouts. The result has ``soundness``, ``mechanism``,
    ``frequency``, ``alignment`` and ``percept`` when those parts ran.
    """
    if "corruptions" in config.runs and config.corruption_source == "published" \
            and published is None:
        raise ValueError("corruption_source: published needs the published CIFAR-C files "
                         "(the worker finds them beside the dataset)")
    if "frequency" in config.runs:  # refused now, not after the other parts' hours
        check_size(test_images, expected_size(model, input_size))
        for n in test_images.shape[-2:]:
            map_frequencies(int(n), config.frequency_map_size)
    if "alignment" in config.runs and alignment_inputs is None:
        raise ValueError("similarity_run: the alignment part needs its held-out stimuli "
                         "(the worker loads them from the similarity run)")
    if "alignment" in config.runs and alignment_inputs is not None:
        check_alignment(alignment_inputs)  # the taps take the stimuli: refused now
    if "percept" in config.runs:
        _check_percept(alignment_inputs, test_images)
    start = time.perf_counter()
    device = pick_device(config.device)
    model = model.to(device).eval()
    parts = config.runs
    out: dict[str, Any] = {"environment": environment_info(device), "parts": list(parts)}
    progress = _Progress(recorder, _weights(
        config, len(test_images), int(test_images[0].numel()), reference=reference is not None,
        n_train=0 if train_images is None else len(train_images),
        held_out=() if alignment_inputs is None
        else tuple(len(h.ids) for h in alignment_inputs.heldout)))
    prov: dict[str, Any] = {"config": asdict(config)}
    ids = sample_ids(len(test_images), config.n_samples, config.sample_seed)
    res: MinimalResult | None = None
    log.info("evaluating on %s: parts %s; %d test images, %d attack samples", device,
             ", ".join(parts), len(test_images), len(ids))
    with deterministic_mode(False, config.seed), full_precision():
        if "noise" in parts:
            with _part("noise", recorder, f"{len(config.noise_sigmas)} σ over "
                       f"{len(test_images)} test images"):
                progress.part("noise")(0.0, "noise curve")
                curve = noise_curve(model, test_images, test_labels,
                                    sigmas=config.noise_sigmas, seed=config.noise_seed,
                                    batch=max(config.batch_size, 100), device=device)
                for k, (sigma, acc) in enumerate(zip(curve.sigmas, curve.accuracy,
                                                     strict=True)):
                    recorder.log_metrics({"noise_sigma": sigma, "noise_acc": acc}, k)
                    log.info("noise σ = %.4g: accuracy %.3f", sigma, acc)
                out["noise"] = {"sigmas": curve.sigmas, "accuracy": curve.accuracy,
                                "n": curve.n, "seed": curve.seed}
                progress.part("noise")(1.0, "noise curve")
        if "minimal" in parts:
            with _part("minimal", recorder, f"{', '.join(config.norms)} on {len(ids)} "
                       "samples") as headline:
                res = _minimal(config, recorder, model, test_images, test_labels, ids,
                               num_classes, device, progress.part("minimal"))
                summary = res.summary()
                headline.append(f"clean accuracy {summary['clean_accuracy']:.3f}")
                headline += [f"median {n} {summary[f'median_{n}']:.4g}" for n in config.norms
                             if summary.get(f"median_{n}") is not None]
            out.update(res.summary())
            out["curves"] = {n: [[s, m if math.isfinite(m) else None] for s, m in res.curves[n]]
                             for n in config.norms}
            prov.update(res.provenance)
            prov["sample_ids"] = res.ids.tolist()
        if "autoattack" in parts:
            with _part("autoattack", recorder, ", ".join(
                    f"{n} ε {' '.join(f'{e:g}' for e in eps)}"
                    for n, eps in config.autoattack_eps.items()) + f" on {len(ids)} samples"):
                out["autoattack"] = _autoattack(config, recorder, model, test_images[ids],
                                                test_labels[ids], ids, res, num_classes,
                                                device, progress.part("autoattack"))
            prov["sample_ids"] = ids.tolist()
        if "corruptions" in parts:
            k = min(config.corruption_samples, len(test_images))
            with _part("corruptions", recorder, f"{len(config.corruptions)} corruptions × "
                       f"{len(config.corruption_severities)} severities on {k} images "
                       f"({config.corruption_source})") as headline:
                cor = _corruptions(config, recorder, model, test_images, test_labels, k,
                                   device, progress.part("corruptions"), published)
                headline.append(f"mean accuracy {cor['mean_accuracy']:.3f}")
            out["corruptions"] = cor
        if "soundness" in parts and res is not None:  # the config made sure it ran
            with _part("soundness", recorder, f"{min(config.soundness_samples, len(ids))} "
                       "samples"):
                out["soundness"] = _soundness(config, recorder, model, test_images,
                                              test_labels, res, reference,
                                              out.get("autoattack"), num_classes, device,
                                              progress.part("soundness"))
        if "mechanism" in parts:
            with _part("mechanism", recorder, f"{len(ids)} samples"):
                progress.part("mechanism")(0.0, "mechanism")
                out["mechanism"] = _mechanism(config, recorder, model, test_images[ids],
                                              test_labels[ids], ids, res, train_images,
                                              tap_target, device)
                progress.part("mechanism")(1.0, "mechanism")
        if "frequency" in parts:
            k = min(config.frequency_samples, len(test_images))
            with _part("frequency", recorder, f"{len(config.frequency_cutoffs)} cut-offs on "
                       f"{k} images, a {config.frequency_map_size}² map on "
                       f"{min(config.frequency_map_samples, k)}, "
                       f"{config.hybrid_pairs} hybrid pairs") as headline:
                out["frequency"] = _frequency(config, recorder, model, test_images,
                                              test_labels, res, device,
                                              progress.part("frequency"))
                headline.append(f"Fourier map mean error "
                                f"{out['frequency']['fourier_map']['mean_error']:.3f}")
        if "alignment" in parts and alignment_inputs is not None:  # checked above
            with _part("alignment", recorder, f"{len(alignment_inputs.heldout)} scans' "
                       "held-out stimuli of " + alignment_inputs.source) as headline:
                out["alignment"] = _alignment(config, recorder, alignment_inputs, device,
                                              progress.part("alignment"))
                headline += [f"{k} {v:.3f}" for k, v in out["alignment"]["mean"].items()
                             if v is not None and k in ("rsa_mix_oracle", "feve_best")]
        if "percept" in parts and res is not None and alignment_inputs is not None:
            with _part("percept", recorder, f"{', '.join(config.norms)} on {len(ids)} "
                       f"samples, {len(alignment_inputs.heldout)} scans' predictor of "
                       + alignment_inputs.source) as headline:
                out["percept"] = _percept(config, recorder, test_images, res,
                                          alignment_inputs, device, progress.part("percept"))
                headline += [f"{k} {v:.3f}" for k, v in out["percept"]["headline"].items()
                             if v is not None]
    from ml.evaluate.minimal import package_versions

    out["versions"] = prov["versions"] = package_versions()
    recorder.save_artifact("provenance.json", json.dumps(prov, indent=1).encode(),
                           "application/json")
    out["seconds"] = time.perf_counter() - start
    log.info("evaluation done in %s", _duration(out["seconds"]))
    recorder.progress(1.0, f"done in {_duration(out['seconds'])}")
    return out


def _corruptions(config: EvaluateConfig, recorder: Recorder, model: torch.nn.Module,
                 test_images: torch.Tensor, test_labels: torch.Tensor, k: int,
                 device: torch.device, progress: Callable[[float, str], None],
                 published: Callable[[str, int, int], torch.Tensor] | None
                 ) -> dict[str, Any]:
    """Accuracy under the chosen corruptions on the first ``k`` test images;
    ``corruptions.csv``."""
    cor = corruption_accuracy(
        model, test_images[:k], test_labels[:k], names=config.corruptions,
        severities=config.corruption_severities, seed=config.corruption_seed,
        batch=max(config.batch_size, 100), device=device, progress=progress,
        should_stop=recorder.should_stop,
        source=None if config.corruption_source == "generated" or published is None
        else lambda name, sev: published(name, sev, k))
    recorder.log_metrics({"corruption_acc": cor["mean_accuracy"]}, 0)
    lines = ["corruption,severity,accuracy"] + [
        f"{name},{sev},{acc:.6g}" for name in cor["names"]
        for sev, acc in zip(cor["severities"], cor["accuracy"][name], strict=True)]
    recorder.save_artifact("corruptions.csv", ("\n".join(lines) + "\n").encode(), "text/csv")
    return cor


def _minimal(config: EvaluateConfig, recorder: Recorder, model: torch.nn.Module,
             test_images: torch.Tensor, test_labels: torch.Tensor, ids: np.ndarray,
             num_classes: int, device: torch.device,
             progress: Callable[[float, str], None]) -> MinimalResult:
    runs = schedule(config.attacks, config.norms, repeats=config.repeats,  # type: ignore[arg-type]
                    search_steps=config.search_steps)
    res = minimal_perturbations(
        model, test_images[ids], test_labels[ids], runs, ids=ids,
        pool=(test_images, test_labels), num_classes=num_classes, seed=config.seed,
        batch=config.batch_size, device=device, norms=config.norms,
        search_steps=config.search_steps, should_stop=recorder.should_stop,
        progress=progress)
    summary = res.summary()
    recorder.log_metrics({"clean_acc_samples": summary["clean_accuracy"]}, 0)
    for norm in config.norms:
        for stat in ("median", "mean"):
            if summary[f"{stat}_{norm}"] is not None:
                recorder.log_metrics({f"{stat}_{norm}": summary[f"{stat}_{norm}"]}, 0)
        for spent, med in res.curves[norm]:
            if math.isfinite(med):
                recorder.log_metrics({f"budget_median_{norm}": med}, spent)
    buf = io.BytesIO()
    arrays: dict[str, Any] = {"sample_ids": res.ids, "labels": res.labels,
                              "clean_correct": res.clean_correct}
    for n in config.norms:
        arrays[f"adversarial_{n}"], arrays[f"distance_{n}"] = res.adversarials[n], res.best[n]
    np.savez_compressed(buf, **arrays)
    recorder.save_artifact("samples.csv", res.table_csv().encode(), "text/csv")
    recorder.save_artifact("minimal.csv", _minimal_csv(res, config.norms).encode(), "text/csv")
    recorder.save_artifact(artifacts.ADVERSARIALS, buf.getvalue(), "application/x-npz")
    return res


def _autoattack(config: EvaluateConfig, recorder: Recorder, model: torch.nn.Module,
                x: torch.Tensor, y: torch.Tensor, ids: np.ndarray, res: MinimalResult | None,
                num_classes: int, device: torch.device,
                progress: Callable[[float, str], None]) -> dict[str, Any]:
    """Every threat model at every ε; each sample AutoAttack breaks is checked against
    the minimal perturbation of the same norm, where one was measured."""
    settings = [(norm, eps) for norm, epss in config.autoattack_eps.items() for eps in epss]
    out: dict[str, list[dict[str, Any]]] = {}
    lines = ["sample_id,label,norm,epsilon,broken_by,distance,minimal"]
    for k, (norm, eps) in enumerate(settings):
        def step(f: float, msg: str, k: int = k) -> None:
            progress((k + f) / len(settings), msg)

        r = autoattack(model, x, y, norm=norm, epsilon=eps, num_classes=num_classes,
                       seed=config.seed, batch=config.batch_size, steps=config.autoattack_steps,
                       queries=config.autoattack_queries, device=device, progress=step,
                       should_stop=recorder.should_stop)
        row = r.summary()
        minimal = res.best.get(norm) if res is not None else None
        if minimal is not None:
            bad = inconsistencies(r, minimal, ids)
            row["inconsistent"] = len(bad)
            row["inconsistent_samples"] = bad[:50]
        else:
            row["inconsistent"] = None  # no minimal perturbations in this norm to check
        index = len(out.setdefault(norm, []))
        out[norm].append(row)
        log.info("AutoAttack %s ε = %.4g (%d/%d): robust accuracy %.3f over %d samples%s", norm,
                 eps, k + 1, len(settings), r.robust_accuracy, len(ids),
                 "" if row["inconsistent"] is None
                 else f", {row['inconsistent']} inconsistent with the minimal search")
        recorder.log_metrics({f"autoattack_{norm}": r.robust_accuracy,
                              f"autoattack_eps_{norm}": eps}, index)
        for i in range(len(ids)):
            d = r.distance[i]
            m = "" if minimal is None or math.isinf(minimal[i]) else f"{minimal[i]:.8g}"
            lines.append(f"{int(ids[i])},{int(y[i])},{norm},{eps:.8g},{r.broken_by[i]},"
                         f"{'inf' if math.isinf(d) else f'{d:.8g}'},{m}")
    recorder.save_artifact("autoattack.csv", ("\n".join(lines) + "\n").encode(), "text/csv")
    return {"components": list(COMPONENTS), "threat_models": out}


def _soundness(config: EvaluateConfig, recorder: Recorder, model: torch.nn.Module,
               test_images: torch.Tensor, test_labels: torch.Tensor, res: MinimalResult,
               reference: torch.nn.Module | None, autoattack: dict[str, Any] | None,
               num_classes: int, device: torch.device,
               progress: Callable[[float, str], None]) -> dict[str, Any]:
    """The soundness checks on the minimal part's samples; ``soundness.json`` holds all
    of it, the result its summary (without the per-sample distances)."""
    runs = schedule(config.attacks, config.norms, repeats=config.repeats,  # type: ignore[arg-type]
                    search_steps=config.search_steps)
    full = soundness(model, test_images[res.ids], test_labels[res.ids], res,
                     norms=config.norms, runs=runs, pool=(test_images, test_labels),
                     num_classes=num_classes, reference=reference,
                     samples=config.soundness_samples, hsja_steps=config.hsja_steps,
                     hsja_gradient_evals=config.hsja_gradient_evals,
                     transfer_steps=config.transfer_steps, search_steps=config.search_steps,
                     autoattack=autoattack, seed=config.seed, batch=config.batch_size,
                     device=device, progress=progress, should_stop=recorder.should_stop)
    full["reference_run"] = config.reference_run
    for norm, row in full["norms"].items():
        recorder.log_metrics({f"soundness_warnings_{norm}": float(len(row["warnings"]))}, 0)
        for key, probe in (("hsja", row["decision_based"]), ("transfer", row["transfer"])):
            if probe is not None and probe["median"] is not None:
                recorder.log_metrics({f"soundness_{key}_{norm}": probe["median"]}, 0)
    recorder.save_artifact("soundness.json", json.dumps(full, indent=1).encode(),
                           "application/json")
    return {k: v for k, v in full.items() if k != "per_sample"}


def _mechanism(config: EvaluateConfig, recorder: Recorder, model: torch.nn.Module,
               x: torch.Tensor, y: torch.Tensor, ids: np.ndarray, res: MinimalResult | None,
               train_images: torch.Tensor | None, tap_target: TapTarget | None,
               device: torch.device) -> dict[str, Any]:
    """The mechanism measures on the fixed samples; ``mechanism.json`` holds them with
    their per-sample values."""
    deltas = None if res is None else {
        n: torch.from_numpy(res.adversarials[n]) - x for n in config.norms}
    summary, detail = mechanism(model, x, y, ids=ids, perturbations=deltas,
                                train_images=train_images, k=config.subspace_k,
                                tap_target=tap_target, seed=config.seed,
                                batch=config.batch_size, device=device)
    grad = summary["input_gradient"]
    recorder.log_metrics({"grad_l2_median": grad["l2"]["median"],
                          "grad_l1_median": grad["l1"]["median"]}, 0)
    sub = summary["subspace"]
    if sub["random"] is not None:
        recorder.log_metrics({"subspace_share_random": sub["random"]["median"]}, 0)
    for norm, row in sub["norms"].items():
        if row["median"] is not None:
            recorder.log_metrics({f"subspace_share_{norm}": row["median"]}, 0)
    for k, r in enumerate((summary["layers"] or {}).get("r", [])):
        recorder.log_metrics({"tap_r": r}, k)
    recorder.save_artifact("mechanism.json", json.dumps(
        {**summary, "per_sample": detail}, indent=1).encode(), "application/json")
    return summary


def _frequency(config: EvaluateConfig, recorder: Recorder, model: torch.nn.Module,
               test_images: torch.Tensor, test_labels: torch.Tensor,
               res: MinimalResult | None, device: torch.device,
               progress: Callable[[float, str], None]) -> dict[str, Any]:
    """Filtered accuracy, the Fourier map and hybrids on ``frequency_samples`` test images
    (the map on the first ``frequency_map_samples`` of them), and the minimal part's
    perturbation spectrum when it ran here; ``frequency.json`` holds it all with the
    per-sample spectra, the images' test-set ids and the hybrid pairs' (low, high)."""
    ids = sample_ids(len(test_images), config.frequency_samples, config.frequency_seed)
    x, y = test_images[ids], test_labels[ids]
    batch = max(config.batch_size, 100)
    cut = config.frequency_cutoffs
    progress(0.0, "low- and high-pass filters")
    filters = filter_accuracy(model, x, y, cutoffs=cut, batch=batch, device=device)
    for k, (c, lo, hi) in enumerate(zip(cut, filters["lowpass"], filters["highpass"],
                                        strict=True)):
        recorder.log_metrics({"frequency_cutoff": c, "lowpass_acc": lo, "highpass_acc": hi}, k)
        log.info("cut-off %g cycles/image: low-pass accuracy %.3f, high-pass %.3f", c, lo, hi)
    # the weights of _weights: filters, map, hybrids
    k_img, m = len(ids), min(config.frequency_map_samples, len(ids))
    parts = np.array([2 * k_img * len(cut), (config.frequency_map_size ** 2 / 2 + 2) * m,
                      config.hybrid_pairs * len(cut)], dtype=float)
    edge = np.cumsum(parts) / parts.sum()
    progress(edge[0], "Fourier map")
    fmap = fourier_map(model, x[:m], y[:m], eps=config.frequency_eps,
                       size=config.frequency_map_size, seed=config.frequency_seed,
                       batch=batch, device=device, should_stop=recorder.should_stop,
                       progress=lambda f, msg: progress(edge[0] + f * (edge[1] - edge[0]),
                                                        msg))
    map_summary = fmap.summary()
    recorder.log_metrics({"fourier_error_mean": map_summary["mean_error"]}, 0)
    log.info("Fourier map (ε = %g, %d images): mean error %.3f, clean %.3f",
             fmap.eps, fmap.n, map_summary["mean_error"], fmap.clean_error)
    progress(edge[1], "hybrid images")
    hyb = hybrid_outcomes(model, x, y, cutoffs=cut, pairs=config.hybrid_pairs,
                          seed=config.frequency_seed, batch=batch, device=device)
    pairs = ids[np.asarray(hyb.pop("pairs"), dtype=int).reshape(-1, 2)]  # test-set ids
    for k, (lo, hi) in enumerate(zip(hyb["low"], hyb["high"], strict=True)):
        recorder.log_metrics({"hybrid_low": lo, "hybrid_high": hi}, k)
    out: dict[str, Any] = {
        "image_size": [int(s) for s in test_images.shape[-2:]], "n": len(ids),
        "seed": config.frequency_seed, "cutoffs": filters["cutoffs"],
        "lowpass": filters["lowpass"], "highpass": filters["highpass"],
        "fourier_map": map_summary, "hybrid": hyb}
    detail: dict[str, Any] = {"sample_ids": ids.tolist(), "hybrid_pairs": pairs.tolist()}
    if res is None:
        out["spectrum"] = None
        out["spectrum_skipped"] = ("the minimal part did not run in this evaluation: no "
                                   "minimal perturbations to analyse")
    else:
        spec, detail["spectrum"] = perturbation_spectrum(
            test_images[res.ids], res.adversarials, res.best)
        out["spectrum"], out["spectrum_skipped"] = spec, None
        out["spectrum_source"] = "the minimal part of this evaluation"
        recorder.log_metrics({"spectrum_centroid_clean": spec["clean"]["centroid"]}, 0)
        for norm, row in spec["norms"].items():
            if row is not None:
                recorder.log_metrics({f"spectrum_centroid_{norm}": row["centroid"]}, 0)
    recorder.save_artifact("frequency.json", json.dumps({**out, **detail}, indent=1).encode(),
                           "application/json")
    progress(1.0, "frequency")
    return out


def _alignment(config: EvaluateConfig, recorder: Recorder, inputs: AlignmentInputs,
               device: torch.device, progress: Callable[[float, str], None]
               ) -> dict[str, Any]:
    """RSA, CKA and ridge FEVE per scan of the similarity run (its oracle images) and
    their mean; ``alignment.json`` holds it all, the result the same without the per-scan
    stimulus ids. Records ``alignment/<headline>`` (the means over scans, step 0)."""
    progress(0.0, "alignment")
    cfg = AlignmentConfig(replicates=config.alignment_replicates,
                          folds=config.alignment_folds, seed=config.alignment_seed)
    full = align_scans(inputs, cfg, device=device, batch=max(config.batch_size, 100),
                       progress=progress)
    for name in HEADLINES:
        if full["mean"][name] is not None:
            recorder.log_metrics({f"alignment/{name}": full["mean"][name]}, 0)
    if full.get("message"):
        log.info("alignment: %s", full["message"])
    recorder.save_artifact("alignment.json", json.dumps(full, indent=1).encode(),
                           "application/json")
    progress(1.0, "alignment")
    return {**full, "scans": {n: {k: v for k, v in s.items() if k != "stimulus_ids"}
                              for n, s in full["scans"].items()}}


def _check_percept(inputs: AlignmentInputs | None, test_images: torch.Tensor) -> None:
    """Refuse, before any part runs, a percept part without the similarity run's predictor
    and weights, or with images the predictor's frame cannot take (1 or 3 channels)."""
    if inputs is None:
        raise ValueError("similarity_run: the percept part needs the similarity run's "
                         "predictor (the worker loads it from the similarity run)")
    if inputs.fit is None or not inputs.heldout \
            or any(h.weights is None for h in inputs.heldout):
        raise ValueError("similarity_run: the percept part needs its fitted predictor and "
                         "each scan's neuron weights (load_heldout's, with the fit)")
    try:
        luminance(test_images[:1].numpy())
    except ValueError as exc:
        raise ValueError(f"parts: {exc} (the percept part embeds them in the predictor's "
                         "one-channel frame)") from None


def _percept(config: EvaluateConfig, recorder: Recorder, test_images: torch.Tensor,
             res: MinimalResult, inputs: AlignmentInputs, device: torch.device,
             progress: Callable[[float, str], None]) -> dict[str, Any]:
    """How far the minimal adversarials move the similarity run's predicted V1 response,
    the model's taps and its logits, against a permuted control
    (:func:`ml.evaluate.percept.percept`) on the minimal part's clean-correct samples with
    a finite adversarial per norm. Records ``percept/<headline>`` (step 0);
    ``percept.json`` holds the result with the per-sample distances, the result the same
    without them."""
    progress(0.0, "percept")
    x = test_images[res.ids].numpy()
    weights = {h.scan: h.weights for h in inputs.heldout if h.weights is not None}
    readout, layers = task_readout(inputs.checkpoint, inputs.fit, weights, device=device)
    norms = [n for n in config.norms if n in res.adversarials]
    selected = {n: res.clean_correct.astype(bool) & np.isfinite(res.best[n]) for n in norms}
    full, detail = percept(readout, x, {n: res.adversarials[n] for n in norms}, selected,
                           scans=list(weights), layers=layers, seed=config.seed,
                           replicates=config.alignment_replicates,
                           boot_seed=config.alignment_seed,
                           batch=max(config.batch_size, 100), progress=progress)
    for row in detail.values():
        row["sample_ids"] = [int(res.ids[i]) for i in row.pop("rows")]
    full = {"source": inputs.source, "scans": list(weights), "layers": layers,
            "embedding": describe((int(x.shape[2]), int(x.shape[3])), int(x.shape[1])),
            "control": ("each perturbation's values permuted at random positions (its L0, "
                        f"L1, L2 and L∞ norms kept; seed {config.seed}), added to the clean "
                        "image and clipped to [0, 1]"),
            "unit_definition": ("D = ‖a ⊙ (r(x') − r(x))‖₂ / s, s the median over pairs of "
                                "distinct clean samples of ‖a ⊙ (r(x_i) − r(x_j))‖₂; a = "
                                "max(w·v, 0) for a scan's predicted response, 1 for the "
                                "model's taps and logits"),
            "replicates": config.alignment_replicates, "seed": config.alignment_seed,
            **full}
    for name, value in full["headline"].items():
        if value is not None:
            recorder.log_metrics({f"percept/{name}": value}, 0)
    recorder.save_artifact("percept.json", json.dumps(
        {**full, "per_sample": detail}, indent=1).encode(), "application/json")
    progress(1.0, "percept")
    return full
