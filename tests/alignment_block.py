"""An evaluation's ``alignment`` block as the alignment part leaves it (only what the study
page and the leaderboard read: the headline means over scans), shared by the server and
browser tests."""

from __future__ import annotations

from typing import Any

from ml.evaluate.alignment_inputs import HEADLINES


def alignment_block(rsa: float, *, similarity_run: int | None = None,
                    feve: float | None = 0.4) -> dict[str, Any]:
    """Headline means with ``rsa_mix_oracle`` = ``rsa`` and the others offset from it
    (``feve_best`` = ``feve``; None: no repeats)."""
    mean: dict[str, float | None] = {k: round(rsa * (1 + 0.1 * i), 6)
                                     for i, k in enumerate(HEADLINES)}
    mean["feve_best"] = feve
    return {"source": {"similarity_run": similarity_run}, "n_scans": 2, "scans": {},
            "mean": mean, "message": None}


SCANS = ("scan-0", "scan-1")
LAYERS = ("layer1", "layer2", "layer3")


def full_alignment_block(*, repeats: bool = True, replicates: int = 40) -> dict[str, Any]:
    """``result["alignment"]`` as :func:`ml.evaluate.run._alignment` leaves it, computed by
    the part's own :func:`ml.evaluate.alignment.alignment` per scan of a small simulated
    recording (two scans, 60 oracle images shown 4 times) with three stand-in taps (the
    pixels, a random ReLU layer of them, a second of that) and a learned-looking γ; S_target
    a noisy copy of the simulation's S_true. ``repeats=False``: one trial per stimulus, so
    no S_oracle, no ceiling, R² without FEVE and the module's message."""
    import numpy as np

    from ml.evaluate.alignment import AlignmentConfig, Responses, alignment
    from ml.evaluate.alignment_inputs import headline
    from ml.neural import estimators as est
    from ml.neural.simulate import SimulationConfig, simulate

    rec = simulate(SimulationConfig(n_images=120, n_oracle=60, oracle_repeats=4,
                                    n_scans=len(SCANS), neurons_per_scan=60, seed=3))
    ids = rec.oracle_ids
    rng = np.random.default_rng(0)
    gamma = [0.2, 0.5, 0.3]
    cfg = AlignmentConfig(replicates=replicates, ceiling_splits=10, folds=5, alphas=9)
    scans: dict[str, Any] = {}
    for name, scan in zip(SCANS, rec.scans, strict=True):
        pixels = scan.images[np.searchsorted(scan.image_ids, ids)].reshape(len(ids), -1)
        pixels = pixels.astype(np.float64)
        truth = rec.truth[np.searchsorted(rec.image_ids, ids)]
        relu = np.maximum(pixels @ rng.normal(size=(pixels.shape[1], 120)), 0)
        relu = np.hstack([relu / relu.std(), truth @ rng.normal(size=(truth.shape[1], 40))
                          / truth.std()])  # the deeper taps carry more of the simulation's V1
        deep = np.maximum(relu @ rng.normal(size=(160, 60)), 0)
        deep = np.hstack([0.3 * deep / deep.std(), truth / truth.std()])
        feats = {LAYERS[0]: pixels, LAYERS[1]: relu, LAYERS[2]: deep}
        s_true = rec.s_true(ids)
        s_target = est.similarity(truth + 0.05 * rng.normal(size=truth.shape))
        resp = Responses.from_scan(scan)
        if not repeats:
            first = np.unique(resp.trial_ids, return_index=True)[1]
            resp = Responses(resp.trials[first], resp.trial_ids[first])
        res = alignment(feats, ids, gamma=gamma, s_target=s_target, s_true=s_true,
                        responses=resp, config=cfg)
        res["headline"] = headline(res)
        scans[name] = res
    mean: dict[str, float | None] = {}
    for key in HEADLINES:
        values = [s["headline"][key] for s in scans.values() if s["headline"][key] is not None]
        mean[key] = float(np.mean(values)) if values else None
    messages = sorted({s["message"] for s in scans.values() if s.get("message")})
    return {"source": "similarity run 3", "taps": [1, 2, 3], "layers": [1, 2, 3],
            "gamma": gamma, "gamma_source": "learned (softmax of the similarity head's logits)",
            "n_scans": len(scans), "n_stimuli": {n: s["n_stimuli"] for n, s in scans.items()},
            "scans": scans, "mean": mean, "message": "; ".join(messages) or None}
