"""The predictor in the loop (issue 38, item 4): how far a model's minimal adversarial
images move the *predicted* V1 response — the similarity run's fitted predictor — against
how far they move the model's own features and logits.

The paper argues that an adversarial image and its clean original "elicit the same
percept". This part makes that measurable with the one model of mouse V1 neuroreg has, and
compares it with a control perturbation of the same size:

- **control**: each adversarial perturbation δ = x_adv − x with its values permuted at
  random positions (:func:`permuted`), which keeps its L0, L1, L2 and L∞ norms exactly;
  x_rand = clip(x + δ_perm, 0, 1), so clipping can shrink it (the realized ratio
  ‖x_rand − x‖₂ / ‖δ‖₂ is recorded);
- **the predictor's frame** (:func:`embed`): the task image as luminance (ITU-R 601 for
  three channels), resized bilinearly to the 36 × 64 frame's height keeping its aspect
  ratio, pasted centred on a canvas filled with the clean image's mean luminance — the
  same fill for x, x_adv and x_rand, so the perturbation's embedding is exact and linear;
- **readouts**: each scan's predicted response weighted per neuron by a = max(w·v, 0)
  (Eq. 6's weights), each tapped layer of the model's task pathway and its logits (a = 1);
- **distance** of a perturbed image from its clean one: D = ‖a ⊙ (r(x') − r(x))‖₂ / s,
  with s the median over pairs of distinct clean images of ‖a ⊙ (r(x_i) − r(x_j))‖₂
  (:func:`distance_unit`): in units of the typical difference between two clean images,
  so the readouts are comparable.

The functions here are pure (arrays in, arrays out); :func:`percept` puts them together
for :mod:`ml.evaluate.run`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

FRAME = (36, 64)
"""The predictor's stimulus frame (H, W), :data:`ml.neural.scan.STIMULUS_SHAPE`'s."""
LUMA = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights of R, G, B."""
UNIT_SAMPLES = 256
"""At most this many clean images (the first of the selected samples) set each readout's
unit s: their pairs (32,640 at 256) give its median; more would only cost memory."""

Readout = Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]
"""(task images (B, C, H, W) in [0, 1], the fill of each one's canvas (B,): its clean
image's mean luminance) → readout name → (B, D) weighted responses a ⊙ r(x)."""


def luminance(images: np.ndarray) -> np.ndarray:
    """(N, C, H, W) → (N, H, W): one channel as it is, three as ITU-R 601 luma.

    Raises:
        ValueError: ``percept``: another channel count.
    """
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"percept: task images must be (N, 1 or 3, H, W), got {x.shape}")
    if x.shape[1] == 1:
        return x[:, 0]
    w = np.asarray(LUMA, dtype=x.dtype if x.dtype.kind == "f" else np.float64)
    return np.tensordot(w, x, axes=([0], [1]))


def placement(size: tuple[int, int], frame: tuple[int, int] = FRAME
              ) -> tuple[int, int, int, int]:
    """Where an (H, W) image lands in the frame: (top, left, height, width), resized to
    the frame's height with its aspect ratio kept (to its width instead when it is wider
    than the frame), centred."""
    h, w = size
    scale = min(frame[0] / h, frame[1] / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    return (frame[0] - nh) // 2, (frame[1] - nw) // 2, nh, nw


def describe(size: tuple[int, int], channels: int) -> str:
    """The embedding in a sentence, for the result."""
    top, left, nh, nw = placement(size)
    return (f"{channels}×{size[0]}×{size[1]} task images "
            f"{'as ITU-R 601 luma' if channels == 3 else 'as they are (one channel)'}, "
            f"resized bilinearly (align_corners=False, no antialiasing) to {nh}×{nw} and "
            f"pasted at row {top}, column {left} of a {FRAME[0]}×{FRAME[1]} canvas filled "
            "with the clean image's mean luminance (the same fill for the clean, adversarial "
            "and control images)")


def embed(images: np.ndarray, fill: np.ndarray | float) -> np.ndarray:
    """Task images (N, C, H, W) in the predictor's frame (N, 1, 36, 64), float32.

    Args:
        images: in [0, 1] (a perturbation: any values, with ``fill`` 0).
        fill: per image (N,) or one value: the canvas around the pasted image.

    Luma, bilinear resizing and pasting are linear, so
    ``embed(x + δ, f) − embed(x, f) == embed(δ, 0)``.
    """
    lum = luminance(images)
    n = lum.shape[0]
    top, left, nh, nw = placement(lum.shape[1:])
    t = torch.from_numpy(np.ascontiguousarray(lum, dtype=np.float32))[:, None]
    if (nh, nw) != tuple(lum.shape[1:]):
        t = torch.nn.functional.interpolate(t, size=(nh, nw), mode="bilinear",
                                            align_corners=False, antialias=False)
    out = np.empty((n, 1, *FRAME), np.float32)
    out[:] = np.broadcast_to(np.asarray(fill, np.float32).reshape(-1, 1, 1, 1)
                             if np.ndim(fill) else np.float32(fill), out.shape)
    out[:, :, top:top + nh, left:left + nw] = t.numpy()
    return out


def permuted(delta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each perturbation (row of ``delta``, any shape after the first axis) with its
    values at random positions: its L0, L1, L2 and L∞ norms exactly kept."""
    d = np.asarray(delta)
    flat = d.reshape(len(d), -1)
    order = np.argsort(rng.random(flat.shape), axis=1)
    return np.take_along_axis(flat, order, axis=1).reshape(d.shape)


def control(x: np.ndarray, x_adv: np.ndarray, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray]:
    """The control images clip(x + δ_perm, 0, 1) of δ = x_adv − x, and each one's realized
    ‖x_rand − x‖₂ / ‖δ‖₂ (1 unless clipping shrank it; NaN for δ = 0)."""
    x = np.asarray(x, np.float32)
    delta = np.asarray(x_adv, np.float32) - x
    x_rand = np.clip(x + permuted(delta, rng), 0.0, 1.0).astype(np.float32)
    norm = np.linalg.norm(delta.reshape(len(x), -1).astype(np.float64), axis=1)
    real = np.linalg.norm((x_rand - x).reshape(len(x), -1).astype(np.float64), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(norm > 0, real / np.where(norm > 0, norm, 1.0), np.nan)
    return x_rand, ratio


def pairwise_median(r: np.ndarray) -> float:
    """The median over pairs i < j of rows of ‖r_i − r_j‖₂ (NaN under two rows)."""
    a = np.asarray(r, np.float64).reshape(len(r), -1)
    if len(a) < 2:
        return float("nan")
    a = a - a.mean(axis=0)  # distances are shift-free; centring keeps the Gram exact
    sq = np.einsum("ij,ij->i", a, a)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (a @ a.T)
    iu = np.triu_indices(len(a), k=1)
    return float(np.median(np.sqrt(np.clip(d2[iu], 0.0, None))))


def mean_luminance(images: np.ndarray) -> np.ndarray:
    """(N,) each image's mean luminance: the fill of its canvas (:func:`embed`)."""
    return luminance(images).reshape(len(images), -1).mean(axis=1)


def readout_all(readout: Readout, x: np.ndarray, batch: int) -> dict[str, np.ndarray]:
    """``readout`` over clean images ``x`` in batches (each its own fill), concatenated."""
    parts: dict[str, list[np.ndarray]] = {}
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        for name, r in readout(xb, mean_luminance(xb)).items():
            parts.setdefault(name, []).append(np.asarray(r).reshape(len(r), -1))
    return {name: np.concatenate(p) for name, p in parts.items()}


def distance_unit(readout: Readout, x: np.ndarray, *, batch: int = 128
                  ) -> dict[str, float]:
    """Each readout's unit s: the median over pairs of distinct clean images ``x`` of the
    distance between their readouts."""
    return {name: pairwise_median(r) for name, r in readout_all(readout, x, batch).items()}


def distances(readout: Readout, x: np.ndarray, perturbed: Mapping[str, np.ndarray],
              unit: Mapping[str, float], *, batch: int = 128
              ) -> dict[str, dict[str, np.ndarray]]:
    """Per perturbed set (e.g. ``adv``, ``rand``; rows matching ``x``'s) and readout, each
    sample's D = ‖r(x') − r(x)‖₂ / s (NaN where s is 0 or not finite); x' is read with
    its clean image's fill."""
    out: dict[str, dict[str, list[np.ndarray]]] = {k: {} for k in perturbed}
    for i in range(0, len(x), batch):
        fill = mean_luminance(x[i:i + batch])
        clean = readout(x[i:i + batch], fill)
        for key, xp in perturbed.items():
            moved = readout(xp[i:i + batch], fill)
            for name, r in clean.items():
                diff = (np.asarray(moved[name], np.float64)
                        - np.asarray(r, np.float64)).reshape(len(r), -1)
                s = unit.get(name, float("nan"))
                d = np.linalg.norm(diff, axis=1)
                out[key].setdefault(name, []).append(
                    d / s if np.isfinite(s) and s > 0 else np.full(len(d), np.nan))
    return {k: {n: np.concatenate(v) for n, v in per.items()} for k, per in out.items()}


def median_ci(values: np.ndarray, *, replicates: int, seed: int,
              index: np.ndarray | None = None) -> dict[str, Any]:
    """The median of the finite ``values`` with a percentile bootstrap 95 % CI over them
    (``replicates`` resamples; None without any). ``index``: (replicates, n) resample rows
    to use instead of drawing (so several statistics share one bootstrap)."""
    v = np.asarray(values, np.float64)
    ok = np.isfinite(v)
    if index is not None:  # shared rows over all samples: keep the finite draws
        draws = [v[row][ok[row]] for row in index]
    else:
        v = v[ok]
        rng = np.random.default_rng(seed)
        draws = [v[rng.integers(0, len(v), len(v))] for _ in range(replicates)] \
            if len(v) else []
    n = int(ok.sum())
    if n == 0:
        return {"median": None, "ci_low": None, "ci_high": None, "n": 0}
    meds = [float(np.median(d)) for d in draws if len(d)]
    lo, hi = (np.percentile(meds, [2.5, 97.5]) if meds else (None, None))
    return {"median": float(np.median(np.asarray(values, np.float64)[ok])),
            "ci_low": None if lo is None else float(lo),
            "ci_high": None if hi is None else float(hi), "n": n}


def summarize(d_adv: np.ndarray, d_rand: np.ndarray, *, replicates: int, seed: int
              ) -> dict[str, Any]:
    """n, median D_adv, median D_rand and the median per-sample ratio D_adv / D_rand, each
    with its percentile bootstrap 95 % CI (one resampling of the samples for all three)."""
    a, r = np.asarray(d_adv, np.float64), np.asarray(d_rand, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(r > 0, a / np.where(r > 0, r, 1.0), np.nan)
    n = len(a)
    index = np.random.default_rng(seed).integers(0, n, (replicates, n)) if n else None
    return {"n": int((np.isfinite(a) & np.isfinite(r)).sum()),
            "adv": median_ci(a, replicates=replicates, seed=seed, index=index),
            "rand": median_ci(r, replicates=replicates, seed=seed, index=index),
            "ratio": median_ci(ratio, replicates=replicates, seed=seed, index=index)}


def specificity(model_adv: np.ndarray, model_rand: np.ndarray, v1_adv: np.ndarray,
                v1_rand: np.ndarray) -> np.ndarray:
    """Per sample (D_model_adv / D_model_rand) / (D_V1_adv / D_V1_rand): above 1 the
    adversarial direction is more special to the model than to predicted V1 (NaN where a
    ratio is undefined)."""
    m_adv, m_rand, v_adv, v_rand = (np.asarray(a, np.float64)
                                    for a in (model_adv, model_rand, v1_adv, v1_rand))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (m_adv / m_rand) / (v_adv / v_rand)
    return np.where(np.isfinite(out), out, np.nan)


def _stat(block: Mapping[str, Any] | None, key: str) -> float | None:
    if block is None:
        return None
    value = block[key]["median"]
    return None if value is None else float(value)


def percept(readout: Readout, x: np.ndarray, adversarials: Mapping[str, np.ndarray],
            selected: Mapping[str, np.ndarray], *, scans: Sequence[str],
            layers: Sequence[str], seed: int, replicates: int, boot_seed: int,
            batch: int = 128, progress: Callable[[float, str], None] | None = None
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The part's measurement on the minimal part's samples.

    Args:
        readout: (task images, fills) → ``v1/<scan>`` (one per scan), ``layer…`` (one per tap) and
            ``logits``, each already weighted (a ⊙ r).
        x: (N, C, H, W) the samples' clean images.
        adversarials: norm → (N, C, H, W) their minimal adversarials.
        selected: norm → (N,) bool, the samples measured at that norm (clean-correct,
            with a finite adversarial).
        scans: the scans' names (the ``v1/<scan>`` readouts), in order.
        layers: the taps' readout names, shallow to deep.
        seed: the controls' permutations (one generator, the norms in order).
        replicates, boot_seed: the bootstrap.

    Returns:
        The summary (JSON-able: per norm the readouts' medians with CIs, the specificity,
        the clipping ratio; the units; ``headline``) and the per-sample detail (ids are the
        caller's; here row indices into ``x``, D values per readout, the clipping ratios).
    """
    rng = np.random.default_rng(seed)
    norms = list(adversarials)
    union = np.zeros(len(x), bool)
    for norm in norms:
        union |= np.asarray(selected[norm], bool)
    unit_rows = np.flatnonzero(union)[:UNIT_SAMPLES]
    unit = distance_unit(readout, x[unit_rows], batch=batch)
    names = [f"v1/{s}" for s in scans] + list(layers) + ["logits"]
    out: dict[str, Any] = {"norms": {}, "unit": unit, "unit_samples": int(len(unit_rows))}
    detail: dict[str, Any] = {}
    deepest = layers[-1] if layers else None
    for k, norm in enumerate(norms):
        rows = np.flatnonzero(np.asarray(selected[norm], bool))
        if progress is not None:
            progress(k / len(norms), f"percept: {norm}, {len(rows)} samples")
        if len(rows) == 0:
            out["norms"][norm] = None
            detail[norm] = {"rows": [], "clip_ratio": [], "adv": {}, "rand": {}}
            continue
        xs, adv = x[rows], np.asarray(adversarials[norm][rows], np.float32)
        x_rand, clip_ratio = control(xs, adv, rng)
        d = distances(readout, xs, {"adv": adv, "rand": x_rand}, unit, batch=batch)
        scan_keys = [f"v1/{s}" for s in scans]
        with np.errstate(invalid="ignore"):
            for key in ("adv", "rand"):  # the mean over scans, each in its own unit
                d[key]["v1"] = np.mean([d[key][s] for s in scan_keys], axis=0)
        readouts = []
        for name in ["v1", *names]:
            kind = ("v1" if name == "v1" else "scan" if name.startswith("v1/")
                    else "logits" if name == "logits" else "layer")
            readouts.append({"name": name, "kind": kind,
                             **summarize(d["adv"][name], d["rand"][name],
                                         replicates=replicates, seed=boot_seed)})
        spec, per = None, None
        if deepest is not None:
            per = specificity(d["adv"][deepest], d["rand"][deepest], d["adv"]["v1"],
                              d["rand"]["v1"])
            spec = {**median_ci(per, replicates=replicates, seed=boot_seed),
                    "layer": deepest}
        finite = clip_ratio[np.isfinite(clip_ratio)]
        out["norms"][norm] = {
            "n": int(len(rows)), "readouts": readouts, "specificity": spec,
            "clip_ratio": float(np.median(finite)) if finite.size else None,
            "clip_ratio_min": float(finite.min()) if finite.size else None}
        detail[norm] = {"rows": rows.tolist(), "clip_ratio": _floats(clip_ratio),
                        "adv": {n: _floats(v) for n, v in d["adv"].items()},
                        "rand": {n: _floats(v) for n, v in d["rand"].items()},
                        **({} if per is None else {"specificity": _floats(per)})}
    head_norm = "l2" if "l2" in norms else (norms[0] if norms else "l2")
    row = out["norms"].get(head_norm)

    def pick(name: str | None) -> dict[str, Any] | None:
        if row is None or name is None:
            return None
        return next((r for r in row["readouts"] if r["name"] == name), None)

    out["headline_norm"] = head_norm
    out["headline"] = {
        f"v1_adv_{head_norm}": _stat(pick("v1"), "adv"),
        f"v1_rand_{head_norm}": _stat(pick("v1"), "rand"),
        f"model_adv_{head_norm}": _stat(pick(deepest), "adv"),
        f"model_rand_{head_norm}": _stat(pick(deepest), "rand"),
        f"logits_adv_{head_norm}": _stat(pick("logits"), "adv"),
        f"specificity_{head_norm}": None if row is None or row["specificity"] is None
        else row["specificity"]["median"]}
    if progress is not None:
        progress(1.0, "percept")
    return out, detail


def _floats(values: np.ndarray) -> list[float | None]:
    """JSON's floats: NaN as None."""
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, np.float64)]


def task_readout(checkpoint: Mapping[str, Any], fit: Any, weights: Mapping[str, np.ndarray],
                 *, device: torch.device | str = "cpu") -> tuple[Readout, list[str]]:
    """The readouts of :func:`percept` for a trained model and a similarity run's fitted
    predictor: ``v1/<scan>`` the predicted response (behaviour held at its mean) of the
    embedded image weighted by max(w·v, 0), each tapped layer of the model's task pathway
    (the one its attacks went through) flattened, and its logits.

    Args:
        checkpoint: the model's ``model.pt`` as ``torch.load`` gives it.
        fit: the similarity run's :class:`~ml.neural.predictor.FitResult`.
        weights: scan → (A,) w·v (Eq. 6's), clipped at 0 here.

    Returns:
        The readout and the taps' names (``layer<k>``), shallow to deep.
    """
    from ml.models import resolve_taps
    from ml.neural.predictor import predict
    from ml.train.classifier import load_model

    model, cfg = load_model(dict(checkpoint))  # the task pathway
    model = model.to(device).eval()
    fit.model.to(device)
    taps = resolve_taps(cfg.taps, len(model.feature_info))
    layers = [int(model.feature_info[t].get("layer", t)) for t in taps]
    names = [f"layer{k}" for k in layers] if len(set(layers)) == len(layers) \
        else [f"tap{t}" for t in taps]  # two taps on one layer: by tap
    depth = sorted(range(len(taps)), key=lambda i: (layers[i], taps[i]))
    a = {scan: np.clip(np.nan_to_num(np.asarray(w, np.float64)), 0.0, None).astype(np.float32)
         for scan, w in weights.items()}

    def readout(images: np.ndarray, fill: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        framed = embed(images, fill)
        for scan, w in a.items():
            out[f"v1/{scan}"] = predict(fit, scan, framed) * w
        with torch.no_grad():
            final, maps = model.forward_intermediates(
                torch.from_numpy(np.ascontiguousarray(images, np.float32)).to(device), taps)
            logits = model.forward_head(final)
        for i in depth:
            out[names[i]] = maps[i].flatten(1).float().cpu().numpy()
        out["logits"] = logits.float().cpu().numpy()
        return out

    return readout, [names[i] for i in depth]
