"""The denoising predictive model of section 2.2: a shared conv core with per-scan
readout, shifter and modulator, fitted jointly on several scans."""

from ml.neural.predictor._data import ScanStats
from ml.neural.predictor.core import Core
from ml.neural.predictor.fit import (
    FitResult,
    PredictorConfig,
    build_predictor,
    fit_predictor,
    gaussian_loss,
    poisson_loss,
    predict,
    resolve_loss,
)
from ml.neural.predictor.model import Predictor
from ml.neural.predictor.modulator import Modulator
from ml.neural.predictor.readout import READOUTS, FactorizedReadout, GaussianReadout
from ml.neural.predictor.shifter import Shifter

__all__ = [
    "READOUTS",
    "Core",
    "FactorizedReadout",
    "FitResult",
    "GaussianReadout",
    "Modulator",
    "Predictor",
    "PredictorConfig",
    "ScanStats",
    "Shifter",
    "build_predictor",
    "fit_predictor",
    "gaussian_loss",
    "poisson_loss",
    "resolve_loss",
    "predict",
]
