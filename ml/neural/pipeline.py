"""The similarity job (paper section 2 end to end): recordings → SNR weights (Eq. 1) →
S_data (Eq. 2), S_oracle (Eq. 3), fluctuations (Eq. 4, 5) → predictive model →
S_model (Eq. 6) averaged over scans → regularization targets and Fig. 1 data."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import reduce
from typing import Annotated, Any, Literal

import numpy as np
from annotated_types import Ge, Le

from ml import artifacts
from ml._validate import validate_config
from ml.neural import estimators as est
from ml.neural import uncertainty as est_u
from ml.neural.figures import cluster_order, histogram, ordered, subsample
from ml.neural.io.options import ImportOptions
from ml.neural.predictor import FitResult, PredictorConfig, fit_predictor, predict
from ml.neural.scan import Scan
from ml.neural.simulate import SimulatedRecording, SimulationConfig, simulate
from ml.neural.target import SimilarityTarget, average_factors, pair_similarity, shuffled
from ml.recorder import Cancelled, MemoryRecorder, Recorder, flush

log = logging.getLogger(__name__)
"""Each stage of a similarity run, with its counts and time: the worker sends this
logger's records to the run's log."""


@dataclass(frozen=True, kw_only=True)
class SimilarityConfig:
    """What a similarity run analyses and how.

    ``source="simulated"`` uses :mod:`ml.neural.simulate` with ``simulation``;
    ``source="recording"`` reads ``recording`` (a path to a Sensorium tree, an ``.nwb``
    or ``.npz`` file, or a folder of them; see docs/recordings.md).

    Attributes:
        source: ``simulated`` mouse V1 (no data needed) or a lab's ``recording``.
        recording: a recording under the server's recordings directory (``neuroreg
            recordings`` lists them).
        importer: how an NWB recording is read: which series, table and image column,
            the response window, gaps in behaviour, frames of another aspect ratio
            (``neuroreg recordings inspect`` shows what a file gives with them).
        simulation: the simulated experiment (images, oracle repeats, scans, neurons).
        predictor: the predictive model that denoises the responses (Eq. 6).
        target_dtype: ``float16`` halves a target's memory.
        pairs_for_r: stimulus pairs sampled for each r(S, S′) score.
        bootstrap: replicates of the bootstrap over stimuli and over neurons behind the
            95 % intervals of r(S_model, S_oracle) and r(S_data, S_oracle); 0: none.
        ceiling_splits: random split halves of the repeats behind S_oracle's noise
            ceiling; 0: none (it needs 4 repeats per oracle image).
        seed: pair sampling, the shuffle control, the bootstrap and the splits.
    """

    source: Literal["simulated", "recording"] = "simulated"
    recording: str = ""
    importer: ImportOptions = field(default_factory=ImportOptions)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    target_dtype: Literal["float32", "float16"] = "float32"
    pairs_for_r: Annotated[int, Ge(1000), Le(50_000_000)] = 2_000_000
    bootstrap: Annotated[int, Ge(0), Le(10_000)] = 100
    ceiling_splits: Annotated[int, Ge(0), Le(10_000)] = 50
    seed: int = 0

    def __post_init__(self) -> None:
        # stored configs come back as JSON dicts: rebuild the nested ones
        for name, cls in (("simulation", SimulationConfig), ("predictor", PredictorConfig),
                          ("importer", ImportOptions)):
            value = getattr(self, name)
            if isinstance(value, dict):
                object.__setattr__(self, name, cls(**value))
        validate_config(self)
        if self.source == "recording" and not self.recording:
            raise ValueError("recording: a path is required when source is 'recording'")


@dataclass
class ScanAnalysis:
    """Per-scan results on the oracle images."""

    name: str
    oracle_ids: np.ndarray  # (n,) this scan's repeated images, the order of the matrices
    weights: np.ndarray  # (A,) Eq. 1
    v: np.ndarray  # (A,) prediction correlation on held-out trials
    s_oracle: np.ndarray  # (n, n) Eq. 3
    s_model: np.ndarray  # (n, n) Eq. 6 on the oracle images
    repeat_fluct: np.ndarray  # Eq. 5
    scatter_data: np.ndarray  # single-trial S^data of oracle pairs i ≠ j
    scatter_oracle: np.ndarray  # the S^oracle each of those estimates
    r_data_oracle: float = 0.0
    r_model_oracle: float = 0.0
    raw: est_u.ScanData | None = None  # what the error bars resample


@dataclass
class SimilarityResult:
    """What :func:`run_similarity` returns (and the job records)."""

    scores: dict[str, float]
    targets: dict[str, SimilarityTarget]
    scans: list[ScanAnalysis]
    figures: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """Small JSON for the run's result: scores and where each target is stored."""
        return {
            "scores": self.scores,
            "targets": {k: artifacts.target(k) for k in self.targets},
            "target_images": {k: len(t) for k, t in self.targets.items()},
            "scans": [a.name for a in self.scans],
        }


def _load(config: SimilarityConfig) -> tuple[list[Scan], SimulatedRecording | None]:
    if config.source == "simulated":
        rec = simulate(config.simulation)
        return rec.scans, rec
    from ml.neural.io import load_recording

    return load_recording(config.recording, config.importer), None


@dataclass
class _Stage:
    """Passes a sub-task's progress through as a slice [start, end] of the whole run."""

    inner: Recorder
    start: float
    end: float

    def log_metrics(self, metrics: Any, step: int) -> None:
        self.inner.log_metrics(metrics, step)

    def save_artifact(self, name: str, data: bytes, media_type: str) -> None:
        self.inner.save_artifact(name, data, media_type)

    def load_artifact(self, name: str) -> bytes | None:
        return self.inner.load_artifact(name)

    def progress(self, fraction: float, message: str = "") -> None:
        self.inner.progress(self.start + (self.end - self.start) * fraction, message)

    def should_stop(self) -> bool:
        return self.inner.should_stop()

    def stop_resumes(self) -> bool:
        return self.inner.stop_resumes()

    def flush(self) -> None:
        flush(self.inner)


def _images_by_id(scans: Sequence[Scan], ids: np.ndarray) -> np.ndarray:
    """(n, 1, 36, 64) stimuli for ``ids``, from whichever scan showed each."""
    out = np.empty((len(ids), 1, 36, 64), dtype=np.float32)
    found = np.zeros(len(ids), dtype=bool)
    for s in scans:
        pos = np.searchsorted(ids, s.image_ids)
        ok = (pos < len(ids)) & (ids[np.minimum(pos, len(ids) - 1)] == s.image_ids)
        out[pos[ok]] = s.images[ok]
        found[pos[ok]] = True
    assert found.all()
    return out


def _mean_response(scan: Scan, ids: np.ndarray) -> np.ndarray:
    """(len(ids), A) response per image, averaged over the trials that showed it."""
    rows = np.searchsorted(ids, scan.trial_image_ids)
    ok = (rows < len(ids)) & (ids[np.minimum(rows, len(ids) - 1)] == scan.trial_image_ids)
    sums = np.zeros((len(ids), scan.n_neurons), dtype=np.float64)
    np.add.at(sums, rows[ok], scan.responses[ok])
    counts = np.bincount(rows[ok], minlength=len(ids))[:, None]
    return (sums / np.maximum(counts, 1)).astype(np.float32)


def _factor_r(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, n_pairs: int,
              exact_up_to: int = 20_000, block: int = 1024) -> float:
    """Pearson r between the off-diagonal entries of A Aᵀ and B Bᵀ (two factors over the
    same stimuli): exact over all pairs, one row block of GEMMs at a time, up to
    ``exact_up_to`` stimuli; above that over ``n_pairs`` random pairs."""
    n = a.shape[0]
    if n > exact_up_to:
        i, j = _random_pairs(rng, n, n_pairs)
        return est.pearson(pair_similarity(a, i, j), pair_similarity(b, i, j))
    a32, b32 = a.astype(np.float32, copy=False), b.astype(np.float32, copy=False)
    sums = np.zeros(5)  # Σx, Σy, Σx², Σy², Σxy over pairs i < j
    for start in range(0, n, block):
        x = a32[start:start + block] @ a32[start:].T  # (rows, n - start)
        y = b32[start:start + block] @ b32[start:].T
        upper = np.triu(np.ones(x.shape, dtype=bool), k=1)
        xs, ys = x[upper].astype(np.float64), y[upper].astype(np.float64)
        sums += [xs.sum(), ys.sum(), xs @ xs, ys @ ys, xs @ ys]
    m = n * (n - 1) / 2
    cov = sums[4] / m - sums[0] * sums[1] / m**2
    var_x, var_y = sums[2] / m - (sums[0] / m) ** 2, sums[3] / m - (sums[1] / m) ** 2
    return float(cov / np.sqrt(var_x * var_y)) if var_x > 0 and var_y > 0 else 0.0


def _random_pairs(rng: np.random.Generator, n: int, count: int) -> tuple[np.ndarray, ...]:
    i = rng.integers(0, n, count)
    j = rng.integers(0, n - 1, count)
    j = j + (j >= i)  # i ≠ j, uniform over ordered pairs
    return i, j


def run_similarity(config: SimilarityConfig, recorder: Recorder | None = None,
                   device: str | None = None) -> SimilarityResult:
    """Analyse recordings the paper's way and build the regularization targets.

    Args:
        config: what to analyse; see :class:`SimilarityConfig`.
        recorder: receives metrics, progress and artifacts (targets, figures, model).
        device: torch device for the predictive model; default CUDA when present.

    Returns:
        Scores (the r values of Fig. 1D and the denoising check), targets and figures.
    """
    rec = recorder or MemoryRecorder()
    rng = np.random.default_rng(config.seed)
    rec.progress(0.0, "loading recordings")
    begun = clock = time.perf_counter()
    if config.source == "simulated":
        sc = config.simulation
        log.info("simulating mouse V1 (%s): %d images (%d oracle × %d repeats), %d scans × "
                 "%d neurons, seed %d", sc.stimuli, sc.n_images, sc.n_oracle,
                 sc.oracle_repeats, sc.n_scans, sc.neurons_per_scan, sc.seed)
    else:
        log.info("loading recording %s", config.recording)
    scans, sim = _load(config)
    all_oracles = np.unique(np.concatenate([s.oracle_ids for s in scans]))
    log.info("%d scans: %d neurons, %d trials, %d oracle images; %.1f s", len(scans),
             sum(s.n_neurons for s in scans), sum(len(s.trial_image_ids) for s in scans),
             len(all_oracles), time.perf_counter() - clock)
    if rec.should_stop():
        raise Cancelled
    rec.progress(0.1, "fitting the predictive model")
    clock = time.perf_counter()
    fit = fit_predictor(scans, config.predictor, recorder=_Stage(rec, 0.1, 0.8), device=device)
    log.info("predictive model fitted: val corr %.3f (best epoch %d); %.1f s", fit.val_corr,
             fit.best_epoch + 1, time.perf_counter() - clock)
    flush(rec)
    rec.progress(0.8, "similarity matrices")

    # the target covers every image no scan repeated (Eq. 6: the non-oracle images)
    target_ids = np.setdiff1d(np.unique(np.concatenate([s.image_ids for s in scans])),
                              all_oracles)
    if target_ids.size < 2:
        raise ValueError("the recordings have fewer than 2 non-oracle images to target")
    target_images = _images_by_id(scans, target_ids)
    # Neural (data) needs a measured response to each image in every scan
    shared_ids = reduce(np.intersect1d, [s.image_ids for s in scans], target_ids)

    analyses, model_factors, data_factors = [], [], []
    for s in scans:
        clock = time.perf_counter()
        a, model_factor, data_factor = _analyse_scan(s, fit, target_images, shared_ids)
        log.info("scan %s: SNR weights (Eq. 1) median %.3g over %d neurons; S_oracle (Eq. 3) "
                 "and S_model (Eq. 6) over %d oracle images: r(S_data, S_oracle) = %.3f, "
                 "r(S_model, S_oracle) = %.3f; repeat fluctuations (Eq. 5) sd %.3g; %.1f s",
                 s.name, float(np.median(a.weights)), s.n_neurons, len(a.oracle_ids),
                 a.r_data_oracle, a.r_model_oracle, float(np.std(a.repeat_fluct)),
                 time.perf_counter() - clock)
        analyses.append(a)
        model_factors.append(model_factor)
        if data_factor is not None:
            data_factors.append(data_factor)
        if rec.should_stop():
            raise Cancelled
    clock = time.perf_counter()
    targets = _targets(config, scans, target_ids, target_images, shared_ids, model_factors,
                       data_factors, sim)
    log.info("targets built (S_model averaged over %d scans, Eq. 6): %s; %.1f s", len(scans),
             ", ".join(f"{k} over {len(t)} images" for k, t in targets.items()),
             time.perf_counter() - clock)

    scores = _scores(analyses, targets, sim, rng, config.pairs_for_r)
    scores["predictor_val_corr"] = float(fit.val_corr)
    errors = _error_bars(config, analyses, rec)
    scores.update(errors["scores"])
    # Eq. 4 and the shared Fig. 1 order compare the oracle images every scan repeated
    common = reduce(np.intersect1d, [s.oracle_ids for s in scans])
    figures = _figures(analyses, common, rng)
    figures["error_bars"] = errors["detail"]
    scores.update(figures["summary"])
    rec.log_metrics(scores, step=0)
    if "delta_scan_sd" in scores:
        log.info("scan fluctuations (Eq. 4) sd %.3g across %d scans", scores["delta_scan_sd"],
                 len(scans))
    log.info("scores: %s", ", ".join(f"{k} {v:.3g}" for k, v in scores.items()
                                     if k.startswith("r_")))
    flush(rec)
    rec.progress(0.9, "saving targets")
    _save(rec, config, targets, figures, fit)
    log.info("saved %d targets, the figures and the predictive model; done in %.1f s",
             len(targets), time.perf_counter() - begun)
    rec.progress(1.0, "done")
    return SimilarityResult(scores, targets, analyses, figures)


def _error_bars(config: SimilarityConfig, analyses: list[ScanAnalysis], rec: Recorder
                ) -> dict[str, Any]:
    """Bootstrap intervals of Fig. 1D's r's and S_oracle's noise ceiling
    (:mod:`ml.neural.uncertainty`), as flat scores and as the figures' detail."""
    raw = [a.raw for a in analyses if a.raw is not None]
    scores: dict[str, float] = {}
    detail: dict[str, Any] = {}
    if config.bootstrap and raw:
        rec.progress(0.85, f"bootstrap: {config.bootstrap} replicates over stimuli and neurons")
        log.info("bootstrap: %d replicates over stimuli and over neurons", config.bootstrap)
        boot = est_u.bootstrap_scores(raw, replicates=config.bootstrap, seed=config.seed)
        detail["bootstrap"] = boot
        for name in ("r_model_oracle", "r_data_oracle"):
            for over in ("stimuli", "neurons"):
                bounds: list[float] = boot[f"{name}_ci_{over}"]  # type: ignore[assignment]
                scores[f"{name}_ci_{over}_lo"], scores[f"{name}_ci_{over}_hi"] = bounds
    min_repeats = min(int(np.bincount(np.searchsorted(d.oracle_ids, d.trial_ids)).min())
                      for d in raw) if raw else 0
    if config.ceiling_splits and min_repeats >= 4:
        ceiling = est_u.noise_ceiling(raw, splits=config.ceiling_splits, seed=config.seed)
        detail["noise_ceiling"] = ceiling
        scores["oracle_split_half_r"] = float(ceiling["split_half_r"])  # type: ignore[arg-type]
        scores["oracle_reliability"] = float(ceiling["reliability"])  # type: ignore[arg-type]
        scores["oracle_noise_ceiling"] = float(ceiling["ceiling"])  # type: ignore[arg-type]
    elif config.ceiling_splits:
        detail["noise_ceiling"] = {"skipped": f"an oracle image has {min_repeats} repeats; "
                                   "split halves need at least 4"}
    return {"scores": scores, "detail": detail}


def _analyse_scan(s: Scan, fit: FitResult, target_images: np.ndarray, shared_ids: np.ndarray
                  ) -> tuple[ScanAnalysis, np.ndarray, np.ndarray | None]:
    """One scan's S_oracle (Eq. 3), S_model on the oracle images (Eq. 6), the Fig. 1
    statistics, and its factors of S_model over the target images (Eq. 6: r̂_ai =
    w_a v_a ρ̂_ai, centred over them) and of S_data over the shared images (Eq. 2; None
    when fewer than two are shared)."""
    oracle_ids = s.oracle_ids
    w = est.snr_weights(s.responses, s.trial_image_ids, oracle_ids)  # Eq. 1
    v = np.clip(np.nan_to_num(fit.v[s.name]), 0.0, None)
    on_oracle = np.isin(s.trial_image_ids, oracle_ids)
    trial_ids = s.trial_image_ids[on_oracle]
    unit = est.unit_vectors(s.responses[on_oracle], weights=w)  # r_ai = w_a ρ_ai
    s_oracle = est.oracle_similarity(unit, trial_ids, oracle_ids)  # Eq. 3
    scat_d, scat_o = est.trial_pair_scatter(unit, trial_ids, oracle_ids, s_oracle)
    pred_oracle = predict(fit, s.name, _images_by_id([s], oracle_ids))  # (n, A) ρ̂
    s_model = est.similarity(pred_oracle, w * v)  # Eq. 6 on the oracle images
    analysis = ScanAnalysis(
        name=s.name, oracle_ids=oracle_ids, weights=w, v=v, s_oracle=s_oracle, s_model=s_model,
        repeat_fluct=est.repeat_fluctuations(unit, trial_ids, oracle_ids, s_oracle),
        scatter_data=scat_d, scatter_oracle=scat_o,
        r_data_oracle=est.pearson(scat_d, scat_o),
        r_model_oracle=est.pearson(est.offdiag(s_model), est.offdiag(s_oracle)),
        raw=est_u.ScanData(s.responses[on_oracle] * w, trial_ids, oracle_ids,
                           pred_oracle * (w * v)),
    )
    model_factor = est.unit_vectors(predict(fit, s.name, target_images), weights=w * v)
    data_factor = (est.unit_vectors(_mean_response(s, shared_ids), weights=w)
                   if shared_ids.size >= 2 else None)
    return analysis, model_factor, data_factor


def _targets(config: SimilarityConfig, scans: Sequence[Scan], target_ids: np.ndarray,
             target_images: np.ndarray, shared_ids: np.ndarray,
             model_factors: list[np.ndarray], data_factors: list[np.ndarray],
             sim: SimulatedRecording | None = None) -> dict[str, SimilarityTarget]:
    """The targets over the scans' averaged factors: neural-model, neural-data (when the
    scans share images) and its shuffle control; for a simulation, neural-true too (its
    noise-free S_true over neural-model's stimuli, the truth's factor in their order)."""
    dtype = np.dtype(config.target_dtype)
    meta = {"scans": [s.name for s in scans], "source": config.source}
    targets = {"neural-model": SimilarityTarget(
        "neural-model", average_factors(model_factors, dtype), target_ids, target_images,
        {**meta, "weights": "w_a * v_a (Eq. 6)"},
    )}
    if data_factors:
        rows = np.searchsorted(target_ids, shared_ids)
        targets["neural-data"] = SimilarityTarget(
            "neural-data", average_factors(data_factors, dtype), shared_ids,
            target_images[rows], {**meta, "weights": "w_a (Eq. 2)"},
        )
    if sim is not None:
        rows = np.searchsorted(sim.image_ids, target_ids)
        targets["neural-true"] = SimilarityTarget(
            "neural-true", sim.truth[rows].astype(dtype), target_ids, target_images,
            {**meta, "weights": "true w_a on noise-free rates (Eq. 2)"},
        )
    targets["shuffle"] = shuffled(targets["neural-model"], seed=config.seed)
    return targets


def _save(rec: Recorder, config: SimilarityConfig, targets: dict[str, SimilarityTarget],
          figures: dict[str, Any], fit: FitResult) -> None:
    for kind, target in targets.items():
        rec.save_artifact(artifacts.target(kind), target.to_bytes(), "application/x-npz")
    rec.save_artifact(artifacts.FIGURES, json.dumps(figures).encode(), "application/json")
    rec.save_artifact(artifacts.PREDICTOR, _predictor_bytes(fit, config),
                      "application/octet-stream")
    rec.save_artifact(artifacts.CONFIG, json.dumps(asdict(config)).encode(),
                      "application/json")


def _scores(analyses: list[ScanAnalysis], targets: dict[str, SimilarityTarget],
            sim: SimulatedRecording | None, rng: np.random.Generator,
            n_pairs: int) -> dict[str, float]:
    scores = {
        "r_model_oracle": float(np.mean([a.r_model_oracle for a in analyses])),
        "r_data_oracle": float(np.mean([a.r_data_oracle for a in analyses])),
        "n_scans": float(len(analyses)),
        "n_neurons": float(sum(a.weights.size for a in analyses)),
        "n_target_images": float(len(targets["neural-model"])),
    }
    if sim is not None:  # the simulation knows S_true: measure the denoising directly
        for kind in ("neural-model", "neural-data"):
            t = targets.get(kind)
            if t is None:
                continue
            rows = np.searchsorted(sim.image_ids, t.image_ids)
            r = _factor_r(t.factor, sim.truth[rows], rng, n_pairs)
            name = "r_model_true" if kind == "neural-model" else "r_data_true"
            scores[name] = r
        scores["r_oracle_true"] = float(np.mean([
            est.pearson(est.offdiag(a.s_oracle), est.offdiag(sim.s_true(a.oracle_ids)))
            for a in analyses
        ]))
    return scores


def _figures(analyses: list[ScanAnalysis], common: np.ndarray,
             rng: np.random.Generator) -> dict[str, Any]:
    # Fig. 1A/1B and Eq. 4 compare the oracle images all scans share; scans that repeated
    # different images (e.g. Sensorium's) show the first scan alone and skip Eq. 4
    shown = analyses if common.size >= 2 else analyses[:1]
    ids = common if common.size >= 2 else analyses[0].oracle_ids

    def sub(a: ScanAnalysis, m: np.ndarray) -> np.ndarray:
        rows = np.searchsorted(a.oracle_ids, ids)
        return m[np.ix_(rows, rows)]

    oracle_mats = [sub(a, a.s_oracle) for a in shown]
    model_mats = [sub(a, a.s_model) for a in shown]
    order = cluster_order(np.mean(oracle_mats, axis=0))
    repeat = np.concatenate([a.repeat_fluct for a in analyses])
    scan = (est.scan_fluctuations(np.stack(oracle_mats))
            if len(shown) > 1 else np.zeros(0))
    span = max(float(np.abs(repeat).max(initial=0)), float(np.abs(scan).max(initial=0)), 1e-3)
    edges = np.linspace(-span, span, 61)
    data_pts = subsample(rng, 5000, np.concatenate([a.scatter_oracle for a in analyses]),
                         np.concatenate([a.scatter_data for a in analyses]))
    model_pts = subsample(rng, 5000,
                          np.concatenate([est.offdiag(a.s_oracle) for a in analyses]),
                          np.concatenate([est.offdiag(a.s_model) for a in analyses]))
    weights = np.concatenate([a.weights for a in analyses])
    v = np.concatenate([a.v for a in analyses])
    summary = {
        "delta_scan_sd": float(scan.std()) if scan.size else float("nan"),
        "delta_repeat_sd": float(repeat.std()),
        "snr_median": float(np.median(weights)),
        "v_median": float(np.median(v)),
    }
    if not np.isfinite(summary["delta_scan_sd"]):
        summary.pop("delta_scan_sd")  # one scan: Eq. 4 needs two
    return {
        "order": order.tolist(),
        "image_ids": ids[order].tolist(),
        "scans": [a.name for a in shown],
        "s_oracle": [ordered(m, order) for m in oracle_mats],  # Fig. 1A
        "s_model": [ordered(m, order) for m in model_mats],  # Fig. 1B
        "fluctuations": {  # Fig. 1C
            "scan": histogram(scan, edges), "repeat": histogram(repeat, edges),
        },
        "scatter": {  # Fig. 1D
            "data": {"oracle": data_pts[0], "data": data_pts[1],
                     "r": float(np.mean([a.r_data_oracle for a in analyses]))},
            "model": {"oracle": model_pts[0], "model": model_pts[1],
                      "r": float(np.mean([a.r_model_oracle for a in analyses]))},
        },
        "snr": histogram(weights, np.linspace(0, max(float(weights.max()), 1e-3), 41)),
        "v": histogram(v, np.linspace(0, 1, 41)),
        "summary": summary,
    }


def _predictor_bytes(fit: FitResult, config: SimilarityConfig) -> bytes:
    """The fitted denoiser with everything needed to rebuild it (config, per-scan
    normalisation, v_a), like every neuroreg checkpoint."""
    import torch

    def plain(x: Any) -> Any:  # tensors and numbers: loads with torch.load(weights_only=True)
        return torch.from_numpy(np.array(x)) if isinstance(x, np.ndarray) else (
            x.item() if isinstance(x, np.generic) else x)

    buf = io.BytesIO()
    torch.save({
        "config": asdict(config),
        "state_dict": fit.model.state_dict(),
        "scans": {name: {"mean": plain(st.behavior_mean), "std": plain(st.behavior_std),
                         "response_scale": plain(st.response_scale), "v": plain(fit.v[name])}
                  for name, st in fit.stats.items()},
        "val_corr": fit.val_corr,
        "best_epoch": fit.best_epoch,
        "loss": fit.loss,  # poisson: elu(x) + 1 output; gaussian: linear
    }, buf)
    return buf.getvalue()
