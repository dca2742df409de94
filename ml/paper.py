"""The paper's reported values, each with where it is stated and in what setting, so a
study can be read beside them (Li et al., "Learning From Brains How to Regularize
Machines", NeurIPS 2019).

Only numbers the paper's text or tables state are here; values read off a plot by eye
are not. Conditions use this package's target names (``cnn-features`` is the paper's
"VGG": conv3_1 of an ImageNet VGG19; ``shuffle`` its "random similarity matrix", the
shuffled S_neural). :func:`setting_beside` puts a study's own settings next to the
paper's, so what differs is said, not guessed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ml.evaluate.run import EvaluateConfig
from ml.study import StudyConfig
from ml.train import TrainConfig

CITATION = ("Li, Brendel, Walker, Cobos, Muhammad, Reimer, Bethge, Sinz, Pitkow, Tolias: "
            "Learning From Brains How to Regularize Machines, NeurIPS 2019")
LABELS = {"none": "None", "shuffle": "Shuffle", "cnn-features": "VGG",
          "neural-data": "Neural (data)", "neural-model": "Neural (model)"}

# Fig. 4A, §4.1: "substantially better performance on noisy input images (50% v.s. 20% at
# the highest noise level)". The σ of that level is in the figure only, not the text.
NOISE_HIGHEST = {
    "source": "Fig. 4A; §4.1",
    "quote": "substantially better performance on noisy input images (50% v.s. 20% at "
             "the highest noise level)",
    "measure": "noise_accuracy_highest",
    "values": {"none": 0.20, "neural-model": 0.50},
    "note": "accuracy at the paper's highest Gaussian noise level; its σ is not stated in "
            "the text, so it is drawn at this study's highest σ",
}

# Fig. 5, §4.2: median minimal perturbation over 1000 test samples; L2 from the gradient
# based boundary attack, L∞ from PGD, each the best over a hyperparameter search.
MEDIANS = {
    "source": "Fig. 5; §4.2",
    "quote": "vanilla model … (median perturbation of 0.0025 (L∞) and 0.09 (L2)). "
             "Regularizing with random similarity matrix (… 0.003 (L∞) and 0.11 (L2)) or "
             "similarity of VGG features (… 0.0028 (L∞) and 0.11 (L2)) … regularization "
             "with the brain's representations … (… 0.0034 (L∞) and 0.13 (L2))",
    "values": {"none": {"linf": 0.0025, "l2": 0.09},
               "shuffle": {"linf": 0.003, "l2": 0.11},
               "cnn-features": {"linf": 0.0028, "l2": 0.11},
               "neural-model": {"linf": 0.0034, "l2": 0.13}},
    "note": "median over 1000 CIFAR-10 test samples of the smallest perturbation found, "
            "models at α = 20 (the main text's); Neural (data) was not attacked",
}

# Supplement, Table 1: γ after training, averaged over the models of Fig. 6 (neural
# regularization toward a one-scan target, 2 or 3 seeds per α; α = 0 is None).
GAMMA = {
    "source": "supplement, Table 1 (models of Fig. 6)",
    "condition": "neural-model",
    "layers": [1, 5, 9, 13, 17],  # of ResNet18, §3
    "rows": [
        {"alpha": 0.0, "gamma": [0.2, 0.2, 0.2, 0.2, 0.2]},
        {"alpha": 2.0, "gamma": [0.0, 1.0, 0.0, 0.0, 0.0]},
        {"alpha": 4.0, "gamma": [0.0, 1.0, 0.0, 0.0, 0.0]},
        {"alpha": 8.0, "gamma": [0.0, 0.33, 0.67, 0.0, 0.0]},
        {"alpha": 16.0, "gamma": [0.0, 0.67, 0.33, 0.0, 0.0]},
        {"alpha": 32.0, "gamma": [0.5, 0.5, 0.0, 0.0, 0.0]},
    ],
    "seeds": "2 or 3 per α",
    "note": "target from one scan (the main text averages 8); γ starts at 0.2 for each "
            "layer and usually collapses onto one",
}

# The setting the values above come from: what the paper states, and where.
SETTING = {
    "dataset": ("grayscale CIFAR-10", "§3, §4.1"),
    "backbone": ("ResNet18", "§3, §4.1, Fig. 3"),
    "width": ("64 (standard ResNet18; the paper states no width)", "—"),
    "epochs": ("40", "§4.1"),
    "batch_size": ("64", "§4.1"),
    "schedule": ("SGD, lr 0.1, ×0.3 every 4 epochs, back to 0.1 after epoch 20", "§4.1"),
    "seeds": ("5 (Fig. 4, 5); 2 or 3 per α (Fig. 6, Table 1)", "Fig. 4 caption, §4.1, "
              "supplement"),
    "alphas": ("α = 20 (Fig. 4, 5); 2–32 in Fig. 6", "supplement"),
    "target": ("mouse V1, 2-photon scans; responses to 5000 grayscale ImageNet images "
               "denoised by a predictive model, similarity averaged over 8 scans", "§2, §2.2"),
    "attack_samples": ("1000 test samples", "§4.2"),
    "attacks": ("gradient-based boundary attack (L2) and PGD (L∞), best over a "
                "hyperparameter search", "§4.2"),
}


def paper_values() -> dict[str, Any]:
    """The paper's reported values with their sources (JSON-ready).

    Returns:
        ``citation``; ``labels`` (target name → the paper's name); ``noise_highest``
        (Fig. 4), ``medians`` (Fig. 5), ``gamma`` (Table 1), each with ``source`` and
        ``values``/``rows``; ``setting``: per field the paper's value and source.
    """
    return {"citation": CITATION, "labels": dict(LABELS), "noise_highest": NOISE_HIGHEST,
            "medians": MEDIANS, "gamma": GAMMA,
            "setting": {k: {"paper": v, "source": s} for k, (v, s) in SETTING.items()}}


def _defaults(cls: type) -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING}


def _target(study: Mapping[str, Any], target: Mapping[str, Any] | None) -> tuple[str, bool | None]:
    run = study.get("target_run")
    if not run:
        return "no target run", False
    if target is None:
        return f"similarity run #{run}", None
    if target.get("source", "simulated") == "simulated":  # SimilarityConfig's default
        return f"simulated responses (similarity run #{run})", False
    return f"recording {target.get('recording') or '?'} (similarity run #{run})", None


def setting_beside(study: Mapping[str, Any], target: Mapping[str, Any] | None = None
                   ) -> list[dict[str, Any]]:
    """A study's settings next to the paper's.

    Args:
        study: the study's stored config (a :class:`~ml.study.StudyConfig` as a dict;
            missing fields read as their defaults).
        target: the config of its target (similarity) run, if it has one.

    Returns:
        One row per field of :data:`SETTING`: ``field``, ``paper`` and ``ours`` (text),
        ``source`` (where the paper states it) and ``same`` (True, False, or None where
        it cannot be told, e.g. a recording whose origin the store does not know).
    """
    train = {**_defaults(TrainConfig), **(study.get("train") or {})}
    evaluate = {**_defaults(EvaluateConfig), **(study.get("evaluate") or {})}
    top = {**_defaults(StudyConfig), **study}
    alphas = [float(a) for a in top.get("alphas") or ()]
    schedule = (train["lr"], train["lr_decay"], train["decay_every"], train["reset_every"])
    ours: dict[str, tuple[str, bool | None]] = {
        "dataset": (str(train["dataset"]), train["dataset"] == "cifar10"),
        "backbone": (str(train["backbone"]), train["backbone"] == "resnet18"),
        "width": (str(train["width"]), train["width"] == 64),
        "epochs": (str(train["epochs"]), train["epochs"] == 40),
        "batch_size": (str(train["batch_size"]), train["batch_size"] == 64),
        "schedule": (f"SGD, lr {train['lr']:g}, ×{train['lr_decay']:g} every "
                     f"{train['decay_every']} epochs, back after epoch {train['reset_every']}",
                     schedule == (0.1, 0.3, 4, 20)),
        "seeds": (str(top["seeds"]), top["seeds"] == 5),
        "alphas": ("α = " + ", ".join(f"{a:g}" for a in alphas), alphas == [20.0]),
        "target": _target(top, target),
        "attack_samples": (f"{evaluate['n_samples']} test samples",
                           evaluate["n_samples"] == 1000),
        "attacks": (f"{evaluate['attacks']} schedule, norms {list(evaluate['norms'])}",
                    evaluate["attacks"] == "paper"),
    }
    return [{"field": k, "paper": paper, "source": source, "ours": ours[k][0],
             "same": ours[k][1]} for k, (paper, source) in SETTING.items()]
