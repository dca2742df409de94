"""Robustness of trained models: Gaussian-noise accuracy curves and minimal adversarial
perturbations (§4.1, §4.2 and the supplement)."""

from ml.evaluate.attacks import NORMS, AttackRun, schedule
from ml.evaluate.minimal import MinimalResult, distances, minimal_perturbations
from ml.evaluate.noise import DEFAULT_SIGMAS, NoiseCurve, noise_curve
from ml.evaluate.run import EvaluateConfig, evaluate_model, sample_ids

__all__ = ["DEFAULT_SIGMAS", "NORMS", "AttackRun", "EvaluateConfig", "MinimalResult",
           "NoiseCurve", "distances", "evaluate_model", "minimal_perturbations",
           "noise_curve", "sample_ids", "schedule"]
