"""What the ``alignment`` evaluate part compares a trained model with, rebuilt from a
similarity run's stored files (issue 38, item 1).

The held-out stimuli are each scan's oracle images: no target covers them (the targets
hold the non-oracle images, Eq. 6) and no train run saw them. Per scan:

- the recording, reloaded as the similarity run read it: re-simulated from its
  ``config.json`` (same seed, same scans) or read again from the recording's path;
- S_target on the oracle images: the run's fitted predictor (``predictor.pt``) predicts
  them, weighted by w_a v_a as :func:`ml.neural.pipeline._analyse_scan` weights S_model
  (Eq. 6);
- the oracle trials (:meth:`ml.evaluate.alignment.Responses.from_scan`), from which
  :func:`ml.evaluate.alignment.alignment` computes S_oracle (Eq. 3) and its ceiling;
- a simulation's noise-free S_true.

The model's side: each tapped layer's features on those images, passed as training
passes stimuli (the stimulus pathway's BatchNorm statistics), flattened to (N, D_k), and
γ = softmax of the similarity head's logits when the model learned one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ml.evaluate.alignment import Responses
from ml.neural import estimators as est
from ml.neural.scan import STIMULUS_SHAPE


@dataclass(frozen=True, eq=False)
class HeldOut:
    """One scan's held-out stimuli and what the model is compared with on them.

    Attributes:
        scan: the scan's name.
        ids: (N,) the oracle images' ids, sorted.
        images: (N, 1, 36, 64) float32 in [0, 1].
        s_target: (N, N) S_model (Eq. 6) of the similarity run's predictor.
        s_true: (N, N) a simulation's noise-free S_true; None for a recording.
        responses: the oracle trials.
        weights: (A,) each neuron's w_a·v_a (Eq. 6's weights, v clipped at 0), as S_target
            weighted them; the ``percept`` part weights the predicted responses by them.
    """

    scan: str
    ids: np.ndarray
    images: np.ndarray
    s_target: np.ndarray
    s_true: np.ndarray | None
    responses: Responses
    weights: np.ndarray | None = None


def load_predictor(path: str | Path) -> Any:
    """The similarity run's fitted predictor (``predictor.pt``) as the
    :class:`~ml.neural.predictor.FitResult` :func:`~ml.neural.predictor.predict` takes
    (on the CPU, in eval mode)."""
    from ml.neural.predictor import FitResult, PredictorConfig
    from ml.neural.predictor._data import ScanStats
    from ml.neural.predictor.fit import build_predictor

    ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    cfg = ckpt["config"]["predictor"]
    config = PredictorConfig(**cfg) if isinstance(cfg, dict) else cfg

    def arr(x: Any) -> np.ndarray:
        return x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)

    scans = ckpt["scans"]
    stats = {n: ScanStats(arr(s["mean"]), arr(s["std"]), arr(s["response_scale"]))
             for n, s in scans.items()}
    v = {n: arr(s["v"]) for n, s in scans.items()}
    loss = str(ckpt.get("loss", "poisson"))
    model = build_predictor(config, {n: int(st.response_scale.size) for n, st in stats.items()},
                            loss=loss)
    model.load_state_dict(ckpt["state_dict"])
    return FitResult(model=model.eval(), config=config, stats=stats, v=v,
                     val_corr=float(ckpt.get("val_corr", float("nan"))), epochs=0,
                     best_epoch=int(ckpt.get("best_epoch", 0)), seconds=0.0, loss=loss)


def load_heldout(config_path: str | Path, predictor_path: str | Path, *,
                 recording: str | Path | None = None, fit: Any = None) -> list[HeldOut]:
    """Each scan's held-out stimuli with S_target, S_true and the trials, from a
    similarity run's ``config.json`` and ``predictor.pt``.

    Args:
        config_path: the run's ``config.json`` (its :class:`SimilarityConfig`).
        predictor_path: the run's ``predictor.pt``.
        recording: for ``source: recording``, the recording's path as resolved now (the
            worker resolves it under its recordings root); default: the stored one.
        fit: the predictor already loaded from ``predictor_path``
            (:func:`load_predictor`; the worker keeps it for the ``percept`` part);
            default: loaded here.

    Raises:
        ValueError: ``similarity_run``: a scan the predictor does not know, or a scan
            without two oracle images.
    """
    from ml.neural.pipeline import SimilarityConfig, _images_by_id
    from ml.neural.predictor import predict
    from ml.neural.simulate import simulate

    try:
        config = SimilarityConfig(**json.loads(Path(config_path).read_text()))
    except (TypeError, ValueError) as exc:  # a config an older version wrote
        raise ValueError(f"similarity_run: its config.json no longer reads as a similarity "
                         f"config ({exc}); run the similarity analysis again") from None
    sim = None
    if config.source == "simulated":
        sim = simulate(config.simulation)
        scans = sim.scans
    else:
        from ml.neural.io import load_recording

        scans = load_recording(recording or config.recording, config.importer)
    if fit is None:
        fit = load_predictor(predictor_path)
    out = []
    for s in scans:
        if s.name not in fit.stats:
            raise ValueError(f"similarity_run: its predictor does not know scan {s.name!r} "
                             f"(it knows {sorted(fit.stats)}): the recording changed since")
        ids = np.asarray(s.oracle_ids)
        if ids.size < 3:
            raise ValueError(f"similarity_run: scan {s.name} has {ids.size} oracle images; "
                             "the alignment scores need at least 3")
        images = _images_by_id([s], ids)
        w = est.snr_weights(s.responses, s.trial_image_ids, ids)  # Eq. 1
        v = np.clip(np.nan_to_num(fit.v[s.name]), 0.0, None)
        s_target = est.similarity(predict(fit, s.name, images), w * v)  # Eq. 6
        out.append(HeldOut(scan=s.name, ids=ids, images=images,
                           s_target=np.asarray(s_target, np.float64),
                           s_true=None if sim is None else np.asarray(sim.s_true(ids),
                                                                      np.float64),
                           responses=Responses.from_scan(s, ids),
                           weights=np.asarray(w * v, np.float64)))
    return out


def model_features(checkpoint: Mapping[str, Any], images: np.ndarray, *,
                   device: torch.device | str = "cpu", batch: int = 256
                   ) -> tuple[dict[str, np.ndarray], list[float] | None, dict[str, Any]]:
    """Each tapped layer's features on ``images``, flattened to (N, D_k), as training
    passes stimuli (the stimulus pathway, eval mode), and Eq. 10's γ when the model
    learned one.

    Returns:
        tap name (``layer<k>``) → (N, D_k) float32 features; γ (softmax of the head's
        logits, one per tap) or None; ``taps`` and ``layers`` of the backbone.

    Raises:
        ValueError: ``similarity_run``: the stimuli cannot pass through the model's taps
            (another channel count or a size its layers cannot take).
    """
    from ml.models import resolve_taps
    from ml.regularize import SimilarityHead
    from ml.train.classifier import load_model

    ckpt = dict(checkpoint)
    model, cfg = load_model(ckpt, pathway="stimulus")
    model = model.to(device).eval()
    taps = resolve_taps(cfg.taps, len(model.feature_info))
    layers = [int(model.feature_info[t].get("layer", t)) for t in taps]
    x = np.asarray(images, np.float32)
    chunks: list[list[np.ndarray]] = [[] for _ in taps]
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch):
                maps = model.forward_intermediates(
                    torch.from_numpy(x[i:i + batch]).to(device), taps,
                    intermediates_only=True, stop_early=True)
                for k, m in enumerate(maps):
                    chunks[k].append(m.flatten(1).float().cpu().numpy())
    except RuntimeError as exc:
        raise ValueError(f"similarity_run: its stimuli ({x.shape[1]}×{x.shape[2]}×"
                         f"{x.shape[3]}) do not pass through the model's taps {taps}: "
                         f"{exc}") from None
    features = {f"layer{layer}": np.concatenate(c) for layer, c in zip(layers, chunks,
                                                                          strict=True)}
    if len(features) != len(taps):  # two taps on one layer: keep both, by tap
        features = {f"tap{t}": np.concatenate(c) for t, c in zip(taps, chunks, strict=True)}
    gamma = None
    if ckpt.get("head") and len(taps) > 1:
        head = SimilarityHead(len(taps), centering=cfg.centering)
        head.load_state_dict(ckpt["head"])
        g = head.gamma.detach().double().cpu().numpy()
        gamma = (g / g.sum()).tolist()  # softmax already; exact sum 1 in float64
    return features, gamma, {"taps": taps, "layers": layers}


def check_stimuli(images: np.ndarray) -> None:
    """Held-out stimuli of the shape every scan has (:data:`STIMULUS_SHAPE`)."""
    if images.ndim != 4 or tuple(images.shape[1:]) != STIMULUS_SHAPE:
        raise ValueError(f"similarity_run: stimuli must be (N, 1, 36, 64), got {images.shape}")


def check_inputs(inputs: AlignmentInputs, device: torch.device | str = "cpu") -> None:
    """Refuse, before any part runs, held-out stimuli the model's taps cannot take: two
    of each scan's images through the taps (a ValueError naming ``similarity_run``)."""
    if not inputs.heldout:
        raise ValueError("similarity_run: no scan to compare with")
    for h in inputs.heldout:
        check_stimuli(h.images)
        model_features(inputs.checkpoint, h.images[:2], device=device)


@dataclass(frozen=True, eq=False)
class AlignmentInputs:
    """What the ``alignment`` and ``percept`` parts read: the evaluated model's checkpoint
    (``model.pt`` as ``torch.load`` gives it) and each scan's held-out stimuli
    (:func:`load_heldout`); ``source`` says where they came from (the similarity run);
    ``fit``, the run's predictor (:func:`load_predictor`, loaded once for both parts),
    which the ``percept`` part needs."""

    checkpoint: Mapping[str, Any]
    heldout: list[HeldOut]
    source: str
    fit: Any = None


HEADLINES = ("rsa_mix_oracle", "rsa_mix_oracle_normalized", "rsa_mix_target", "rsa_mix_true",
             "rsa_best_oracle", "cka_mix_oracle", "feve_best", "r2_best")
"""The numbers of each scan's result a study row or leaderboard sorts by, and their mean
over scans (``alignment/<name>`` in the Recorder). RSA is Pearson r of the γ-mix's
S_CNN (Eq. 10) with S_oracle, S_target, S_true; ``rsa_best_oracle`` the best single
tap's; ``feve_best`` the best tap's ridge FEVE (None without repeats), ``r2_best`` its
unnormalized R² (always there)."""


def headline(result: Mapping[str, Any]) -> dict[str, float | None]:
    """A scan's headline numbers (:data:`HEADLINES`) from its :func:`alignment` result;
    None where the reference or the score is missing."""
    rsa = result.get("rsa") or {}

    def r(model: str, ref: str, key: str = "r") -> float | None:
        value = ((rsa.get(model) or {}).get(ref) or {}).get("pearson", {}).get(key)
        return None if value is None else float(value)

    taps = list(result.get("layers") or [])
    oracle = [v for v in (r(t, "s_oracle") for t in taps) if v is not None]
    pred = result.get("predictivity") or {}
    feve = [p["feve"] for p in pred.values() if p.get("feve") is not None]
    r2 = [p["r2"] for p in pred.values() if p.get("r2") is not None]
    cka = (result.get("cka") or {}).get("mix", {}).get("s_oracle")
    return {"rsa_mix_oracle": r("mix", "s_oracle"),
            "rsa_mix_oracle_normalized": r("mix", "s_oracle", "normalized"),
            "rsa_mix_target": r("mix", "s_target"), "rsa_mix_true": r("mix", "s_true"),
            "rsa_best_oracle": max(oracle) if oracle else None,
            "cka_mix_oracle": None if cka is None else float(cka),
            "feve_best": max(feve) if feve else None, "r2_best": max(r2) if r2 else None}


def align_scans(inputs: AlignmentInputs, config: Any, *, device: torch.device | str = "cpu",
                batch: int = 256, progress: Any = None) -> dict[str, Any]:
    """:func:`ml.evaluate.alignment.alignment` per scan (each its own oracle images) and
    the mean of their headline numbers.

    γ is the model's learned one; a model without a similarity head (None) or with one
    tap gets Eq. 10's starting γ = 1/K, so every model has a mix to compare.

    Returns:
        JSON-able: ``source``, ``taps``, ``layers``, ``gamma``, ``gamma_source``,
        ``scans`` (name → the alignment result with its ``headline``), ``mean`` (each
        headline number's mean over the scans that have it), ``message`` (the module's
        when a scan has no repeats).
    """
    from ml.evaluate.alignment import alignment

    if not inputs.heldout:
        raise ValueError("similarity_run: no scan to compare with")
    scans: dict[str, Any] = {}
    info: dict[str, Any] = {}
    gamma: list[float] | None = None
    learned = False
    for k, h in enumerate(inputs.heldout):
        check_stimuli(h.images)
        feats, g, info = model_features(inputs.checkpoint, h.images, device=device,
                                        batch=batch)
        learned = g is not None
        gamma = g if g is not None else [1.0 / len(feats)] * len(feats)
        res = alignment(feats, h.ids, gamma=gamma if len(feats) > 1 else None,
                        s_target=h.s_target, s_true=h.s_true, responses=h.responses,
                        config=config)
        res["headline"] = headline(res)
        res["stimulus_ids"] = [int(i) for i in h.ids]
        scans[h.scan] = res
        if progress is not None:
            progress((k + 1) / len(inputs.heldout), f"alignment: scan {h.scan}")
    mean: dict[str, float | None] = {}
    for name in HEADLINES:
        values = [s["headline"][name] for s in scans.values() if s["headline"][name] is not None]
        mean[name] = float(np.mean(values)) if values else None
    messages = sorted({s["message"] for s in scans.values() if s.get("message")})
    return {"source": inputs.source, **info, "gamma": gamma,
            "gamma_source": "learned (softmax of the similarity head's logits)" if learned
            else "uniform 1/K (the model learned no γ)",
            "n_scans": len(scans), "n_stimuli": {n: s["n_stimuli"] for n, s in scans.items()},
            "scans": scans, "mean": mean, "message": "; ".join(messages) or None}
