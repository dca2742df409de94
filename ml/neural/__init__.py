"""Neural representational similarity (paper section 2): recordings, the Eq. 1–6
estimators, a predictive model that denoises, and the regularization target."""

from ml.neural.scan import BEHAVIOR, STIMULUS_SHAPE, TIERS, RecordingError, Scan
from ml.neural.target import SimilarityTarget

__all__ = ["BEHAVIOR", "STIMULUS_SHAPE", "TIERS", "RecordingError", "Scan", "SimilarityTarget"]
