"""An evaluation: noise-robustness curve and minimal adversarial perturbations of one
trained model, reported through a Recorder.

Records: ``noise_acc`` and ``noise_sigma`` (step k = the k-th σ), ``median_<norm>``
(step 0), ``budget_median_<norm>`` (step = attack iterations spent so far: the per-budget
curve, Fig. 5), ``clean_acc_samples``. Artifacts: ``samples.csv`` (one row per sample ×
attack run: sample id, label, attack, hyperparameters, norm, distances, success),
``minimal.csv`` (per sample: minimal distance per norm and the run that found it),
``adversarials.npz`` (the minimal adversarials, re-verified), ``provenance.json``.
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

import numpy as np
import torch
from annotated_types import Ge, Le

from ml import artifacts
from ml._validate import validate_config
from ml.evaluate.attacks import NORMS, schedule
from ml.evaluate.minimal import MinimalResult, minimal_perturbations
from ml.evaluate.noise import DEFAULT_SIGMAS, noise_curve
from ml.recorder import Recorder
from ml.runtime import deterministic_mode, environment_info, pick_device


@dataclass(frozen=True, kw_only=True)
class EvaluateConfig:
    """An evaluation of one trained model.

    ``train_run`` names the train run whose ``model.pt`` the service evaluates on that
    run's dataset (its test split). ``attacks: none`` measures the noise curve only.

    Attributes:
        train_run: the succeeded train run whose ``model.pt`` it evaluates.
        noise_sigmas: σ of the Gaussian noise added to the test images (Fig. 4), images
            in [0, 1].
        noise_seed: the noise drawn (the same for every model given the seed).
        attacks: ``paper`` (the supplement's grid, for a GPU), ``quick`` (a small grid for a
            CPU) or ``none`` (the noise curve only).
        norms: the perturbation norms measured: any of linf, l2, l1, l0.
        n_samples: test images attacked (the supplement's 1,000).
        sample_seed: which test images (the same for every model given the seed).
        repeats: runs of each attack setting (the supplement's 5).
        search_steps: bisection steps of each fixed-ε attack's per-image ε search.
        batch_size: images per attack batch.
        seed: the attacks' random starts.
        device: ``auto`` takes CUDA when the worker has it.
    """

    train_run: Annotated[int, Ge(1)] | None = None
    noise_sigmas: tuple[float, ...] = DEFAULT_SIGMAS
    noise_seed: Annotated[int, Ge(0)] = 0
    attacks: Literal["paper", "quick", "none"] = "paper"
    norms: tuple[str, ...] = NORMS
    n_samples: Annotated[int, Ge(1), Le(100_000)] = 1000
    sample_seed: Annotated[int, Ge(0)] = 0
    repeats: Annotated[int, Ge(1), Le(20)] = 1
    search_steps: Annotated[int, Ge(1), Le(30)] = 10
    batch_size: Annotated[int, Ge(1), Le(4096)] = 250
    seed: Annotated[int, Ge(0)] = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        for name in ("noise_sigmas", "norms"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        validate_config(self)
        sig = self.noise_sigmas
        if not sig or any(isinstance(s, bool) or not isinstance(s, int | float)
                          or not math.isfinite(s) or s < 0 for s in sig):
            raise ValueError(f"noise_sigmas: need one or more finite σ ≥ 0, got {list(sig)}")
        bad = sorted(set(self.norms) - set(NORMS))
        if bad or not self.norms:
            raise ValueError(f"norms: {bad or 'none'} given; choose from {list(NORMS)}")


def sample_ids(n_test: int, n_samples: int, seed: int) -> np.ndarray:
    """The fixed sample subset: the same test images for every model given the seed."""
    if n_test == 0:
        raise ValueError("samples: the test set is empty")
    k = min(n_samples, n_test)
    return np.sort(np.random.default_rng(seed).choice(n_test, size=k, replace=False))


def _minimal_csv(res: MinimalResult, norms: tuple[str, ...]) -> str:
    lines = ["sample_id,label,clean_correct," + ",".join(
        f"{n},{n}_attack" for n in norms)]
    for i, sid in enumerate(res.ids):
        vals = [str(int(sid)), str(int(res.labels[i])), str(int(res.clean_correct[i]))]
        for n in norms:
            d = res.best[n][i]
            vals += ["inf" if math.isinf(d) else f"{d:.8g}", res.best_attack[n][i]]
        lines.append(",".join(vals))
    return "\n".join(lines) + "\n"


def evaluate_model(config: EvaluateConfig, recorder: Recorder, model: torch.nn.Module,
                   test_images: torch.Tensor, test_labels: torch.Tensor, *,
                   num_classes: int) -> dict[str, Any]:
    """Noise curve on the whole test split, then minimal perturbations on the sample set.

    Returns:
        A JSON-able summary: the noise curve, per-norm medians (None when more than half
        the samples were never broken), unbroken counts, the sample count, seconds.
    """
    start = time.perf_counter()
    device = pick_device(config.device)
    model = model.to(device).eval()
    out: dict[str, Any] = {"environment": environment_info(device)}
    with deterministic_mode(False, config.seed):
        recorder.progress(0.0, "noise curve")
        curve = noise_curve(model, test_images, test_labels, sigmas=config.noise_sigmas,
                            seed=config.noise_seed, batch=max(config.batch_size, 100),
                            device=device)
        for k, (sigma, acc) in enumerate(zip(curve.sigmas, curve.accuracy, strict=True)):
            recorder.log_metrics({"noise_sigma": sigma, "noise_acc": acc}, k)
        out["noise"] = {"sigmas": curve.sigmas, "accuracy": curve.accuracy, "n": curve.n,
                        "seed": curve.seed}
        if config.attacks == "none":
            out["seconds"] = time.perf_counter() - start
            return out
        ids = sample_ids(len(test_images), config.n_samples, config.sample_seed)
        runs = schedule(config.attacks, config.norms, repeats=config.repeats,
                        search_steps=config.search_steps)
        res = minimal_perturbations(
            model, test_images[ids], test_labels[ids], runs, ids=ids,
            pool=(test_images, test_labels), num_classes=num_classes, seed=config.seed,
            batch=config.batch_size, device=device, norms=config.norms,
            search_steps=config.search_steps, should_stop=recorder.should_stop,
            progress=lambda f, msg: recorder.progress(0.05 + 0.95 * f, msg))
    summary = res.summary()
    recorder.log_metrics({"clean_acc_samples": summary["clean_accuracy"]}, 0)
    for norm in config.norms:
        if summary[f"median_{norm}"] is not None:
            recorder.log_metrics({f"median_{norm}": summary[f"median_{norm}"]}, 0)
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
    prov = {**res.provenance, "config": asdict(config), "sample_ids": res.ids.tolist()}
    recorder.save_artifact("provenance.json", json.dumps(prov, indent=1).encode(),
                           "application/json")
    out.update(summary)
    out["curves"] = {n: [[s, m if math.isfinite(m) else None] for s, m in res.curves[n]]
                     for n in config.norms}
    out["versions"] = res.provenance["versions"]
    out["seconds"] = time.perf_counter() - start
    return out
