"""Fitting the denoising predictor jointly on several scans, and predicting with it.

The paper (section 2.2) trains a predictive model so that each neuron's response ρ̂_ai
to an image can be read off without trial-to-trial noise; ``v_a`` (its correlation with
held-out responses) later scales the model responses (Eq. 6). :func:`predict` without
behaviour holds the non-visual factors at their train-tier mean, which is the
denoised, purely visual response.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import torch
from annotated_types import Ge, Gt, Le, Lt

from ml._validate import Problems, validate_config
from ml.neural.predictor._data import ScanStats, ScanTensors, pearson, scan_stats, to_tensors
from ml.neural.predictor.core import Core
from ml.neural.predictor.model import Predictor
from ml.neural.predictor.modulator import Modulator
from ml.neural.predictor.readout import build_readout
from ml.neural.predictor.shifter import Shifter
from ml.neural.scan import STIMULUS_SHAPE, Scan
from ml.recorder import Cancelled, Recorder
from ml.runtime import deterministic_mode, pick_device

log = logging.getLogger(__name__)

_EPS = 1e-8  # inside the Poisson log
_EVAL_BATCH = 512


Loss = Literal["auto", "poisson", "gaussian"]


@dataclass(frozen=True, kw_only=True)
class PredictorConfig:
    """Architecture and training of the predictor; defaults fit 4 scans in minutes on CPU.

    ``loss`` says what the responses are: ``poisson`` for spike counts or deconvolved
    events (non-negative; the paper's, and Sensorium's), with a positive output
    ``elu(x) + 1``; ``gaussian`` for dF/F and other real-valued traces (negative
    somewhere in nearly every 2-photon file), mean squared error with a linear output;
    ``auto`` takes ``poisson`` when every response is ≥ 0 and ``gaussian`` otherwise.
    """

    hidden_channels: Annotated[int, Ge(1), Le(256)] = 16
    input_kernel: Annotated[int, Ge(1), Le(25)] = 9
    hidden_kernel: Annotated[int, Ge(1), Le(15)] = 3
    layers: Annotated[int, Ge(1), Le(8)] = 3
    readout_layers: Annotated[int, Ge(1), Le(8)] = 1
    stride: Annotated[int, Ge(1), Le(4)] = 2
    readout: Literal["gaussian", "factorized"] = "gaussian"
    factorized_pool: Annotated[int, Ge(1), Le(8)] = 2
    use_shifter: bool = True
    use_modulator: bool = True
    behavior_hidden: Annotated[int, Ge(1), Le(256)] = 8
    lr: Annotated[float, Gt(0), Le(1)] = 5e-3
    batch_size: Annotated[int, Ge(2), Le(4096)] = 64
    max_epochs: Annotated[int, Ge(1), Le(1000)] = 20
    patience: Annotated[int, Ge(1), Le(1000)] = 5
    lr_decay: Annotated[float, Gt(0), Lt(1)] = 0.3
    lr_patience: Annotated[int, Ge(0), Le(1000)] = 2
    gamma_input: Annotated[float, Ge(0), Le(1e3)] = 0.01
    gamma_readout: Annotated[float, Ge(0), Le(1e3)] = 1e-3
    gamma_shifter: Annotated[float, Ge(0), Le(1e3)] = 1e-3
    gamma_modulator: Annotated[float, Ge(0), Le(1e3)] = 1e-3
    seed: Annotated[int, Ge(0)] = 0
    loss: Loss = "auto"

    def __post_init__(self) -> None:
        validate_config(self)
        problems = Problems()  # every field's problem in one answer
        for name in ("input_kernel", "hidden_kernel"):
            with problems:
                if getattr(self, name) % 2 == 0:
                    raise ValueError(f"{name}: {getattr(self, name)} must be odd")
        with problems:
            if self.readout_layers > self.layers:
                raise ValueError(
                    f"readout_layers: {self.readout_layers} exceeds layers ({self.layers})"
                )
        problems.raise_any()


@dataclass(frozen=True, eq=False)
class FitResult:
    """A fitted predictor and what is needed to use it.

    Attributes:
        model: the predictor with the best validation weights, in eval mode.
        config: the configuration it was fitted with.
        stats: per scan, the train-tier normalization of behaviour and responses.
        v: per scan, (A,) Pearson r of predictions vs single-trial responses on held-out
            trials (the test tier if the scan has one, else validation).
        val_corr: best mean validation correlation over all neurons.
        epochs: epochs run.
        best_epoch: the epoch (0-based) whose weights were kept.
        seconds: wall time of the fit.
        loss: ``poisson`` or ``gaussian``, the loss it was fitted with.
    """

    model: Predictor
    config: PredictorConfig
    stats: dict[str, ScanStats]
    v: dict[str, np.ndarray]
    val_corr: float
    epochs: int
    best_epoch: int
    seconds: float
    loss: str = "poisson"  # the one fitted ("auto" resolved)


def build_predictor(
    config: PredictorConfig,
    neurons: Mapping[str, int],
    mean_responses: Mapping[str, np.ndarray] | None = None,
    *,
    loss: str = "poisson",
) -> Predictor:
    """An untrained predictor for scans with ``neurons[name]`` neurons each.

    Args:
        config: architecture and regularizer weights.
        neurons: number of neurons per scan name.
        mean_responses: per scan, (A,) mean (scaled) response to start each bias at.
        loss: ``poisson`` (a positive output) or ``gaussian`` (a linear one).

    Returns:
        The predictor, on CPU.
    """
    core = Core(
        hidden_channels=config.hidden_channels,
        input_kernel=config.input_kernel,
        hidden_kernel=config.hidden_kernel,
        layers=config.layers,
        readout_layers=config.readout_layers,
        stride=config.stride,
        gamma_input=config.gamma_input,
    )
    in_shape = core.output_shape(*STIMULUS_SHAPE[1:])
    means = mean_responses or {}
    readouts = {
        name: build_readout(
            config.readout,
            in_shape,
            n,
            gamma=config.gamma_readout,
            pool=config.factorized_pool,
            mean_response=torch.as_tensor(means[name]) if name in means else None,
        )
        for name, n in neurons.items()
    }
    hidden = config.behavior_hidden
    shifters = (
        {n: Shifter(hidden=hidden, gamma=config.gamma_shifter) for n in neurons}
        if config.use_shifter
        else None
    )
    modulators = (
        {n: Modulator(a, hidden=hidden, gamma=config.gamma_modulator) for n, a in neurons.items()}
        if config.use_modulator
        else None
    )
    if loss == "gaussian":  # a linear output starts at each neuron's mean as it is
        for name, readout in readouts.items():
            if name in means:
                readout.bias.data = torch.as_tensor(means[name]).float().clone()
    return Predictor(core, readouts, shifters, modulators,
                     output="linear" if loss == "gaussian" else "positive")


def gaussian_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gaussian negative log-likelihood at unit variance up to a constant (half the mean
    squared error), mean over trials and neurons: for real-valued responses."""
    return 0.5 * ((pred - target) ** 2).mean()


def resolve_loss(loss: str, scans: Sequence[Scan]) -> str:
    """``auto`` → ``poisson`` when every response is ≥ 0, else ``gaussian``; a Poisson
    loss asked for negative responses is refused saying what to do."""
    negative = [(s.name, float(s.responses.min())) for s in scans if (s.responses < 0).any()]
    if loss == "auto":
        return "gaussian" if negative else "poisson"
    if loss == "poisson" and negative:
        name, low = negative[0]
        raise ValueError(
            f"predictor.loss: scan {name!r} has negative responses (min {low:.4g}): the "
            "Poisson loss is for spike counts or deconvolved events; dF/F and other "
            "real-valued traces need predictor.loss: gaussian (or auto)")
    return loss


def poisson_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Poisson negative log-likelihood up to a constant, mean over trials and neurons."""
    return (pred - target * torch.log(pred + _EPS)).mean()


def _check_scans(scans: Sequence[Scan]) -> None:
    if not scans:
        raise ValueError("fit_predictor needs at least one scan")
    names = [s.name for s in scans]
    if len(set(names)) != len(names):
        raise ValueError(f"scan names must be unique, got {names}")


@torch.no_grad()
def _predict_trials(
    model: Predictor, name: str, data: ScanTensors, trials: np.ndarray
) -> np.ndarray:
    """(len(trials), A) scaled predictions with each trial's own behaviour."""
    model.eval()
    out = []
    for i in range(0, trials.size, _EVAL_BATCH):
        idx = torch.as_tensor(trials[i : i + _EVAL_BATCH], device=data.responses.device)
        images = data.images[data.trial_image[idx]]  # (B, 1, H, W)
        out.append(model(images, name, data.behavior[idx]).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, data.responses.shape[1]), np.float32)


def _correlations(
    model: Predictor, data: Mapping[str, ScanTensors], split: str
) -> dict[str, np.ndarray]:
    """Per scan, (A,) correlation of predictions with responses on ``split`` trials."""
    result = {}
    for name, d in data.items():
        trials = getattr(d, split)
        pred = _predict_trials(model, name, d, trials)
        result[name] = pearson(pred, d.responses[torch.as_tensor(trials)].cpu().numpy())
    return result


def _train_epoch(
    model: Predictor,
    opt: torch.optim.Optimizer,
    data: Mapping[str, ScanTensors],
    batch_size: int,
    rng: np.random.Generator,
    recorder: Recorder | None,
    data_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """One pass over every scan's train trials, batches of one scan each, scans
    interleaved in random order (like neuralpredictors' cycler); returns the mean loss."""
    batches = [
        (name, chunk)
        for name, d in data.items()
        for chunk in np.array_split(rng.permutation(d.train), math.ceil(d.train.size / batch_size))
    ]
    model.train()
    total = 0.0
    for k in rng.permutation(len(batches)):
        if recorder is not None and recorder.should_stop():
            raise Cancelled("predictor fit stopped by its recorder")
        name, chunk = batches[k]
        d = data[name]
        idx = torch.as_tensor(chunk, device=d.responses.device)
        pred = model(d.images[d.trial_image[idx]], name, d.behavior[idx])  # (B, A)
        # the total loss, in one place: data term plus every part's regularizer
        loss = (data_loss or poisson_loss)(pred, d.responses[idx]) + model.regularizer(name)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item()
    return total / len(batches)


def fit_predictor(
    scans: Sequence[Scan],
    config: PredictorConfig | None = None,
    *,
    recorder: Recorder | None = None,
    device: str | torch.device | None = None,
) -> FitResult:
    """Train one predictor jointly on ``scans`` (shared core, per-scan readouts).

    Minimizes the data loss (``config.loss``: Poisson for non-negative responses, Gaussian
    for dF/F) plus every part's regularizer with Adam, on batches of one
    scan each, the scans interleaved in a seeded random order. After each epoch the mean
    validation correlation decides the learning-rate decay and early stopping; the best
    epoch's weights are kept. Logs ``predictor/train_loss``, ``predictor/val_corr`` and
    ``predictor/lr`` per epoch (step = epoch). Deterministic given the seed on CPU.

    Args:
        scans: recordings with unique names (non-negative responses for a Poisson loss).
        config: hyperparameters; defaults to ``PredictorConfig()``.
        recorder: receives metrics and progress; may cancel the fit.
        device: ``"auto"``/None (CUDA when present), ``"cpu"``, ``"cuda"`` or a device.

    Returns:
        The fitted model with its normalization stats, per-neuron ``v`` and history.

    Raises:
        Cancelled: when ``recorder.should_stop()`` turns true.
        FloatingPointError: when the loss becomes non-finite.
        ValueError: for unusable scans.
    """
    start = time.perf_counter()
    config = config or PredictorConfig()
    _check_scans(scans)
    loss = resolve_loss(config.loss, scans)
    dev = device if isinstance(device, torch.device) else pick_device(device or "auto")
    stats = {s.name: scan_stats(s) for s in scans}
    # grid_sample has no deterministic CUDA backward, so determinism is a CPU promise
    with deterministic_mode(dev.type == "cpu", config.seed):
        data = {s.name: to_tensors(s, stats[s.name], config.seed, dev) for s in scans}
        means = {  # (A,) scaled train-tier means, to start each readout's bias at
            n: d.responses[torch.as_tensor(d.train, device=dev)].mean(0).cpu().numpy()
            for n, d in data.items()
        }
        model = build_predictor(config, {s.name: s.n_neurons for s in scans}, means, loss=loss)
        data_loss = gaussian_loss if loss == "gaussian" else poisson_loss
        model = model.to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="max", factor=config.lr_decay, patience=config.lr_patience
        )
        rng = np.random.default_rng(config.seed)
        best, best_epoch, best_state = -math.inf, -1, None
        epoch = 0
        log.info("predictive model: %d scans, %d neurons, up to %d epochs (patience %d), "
                 "%s loss, on %s", len(scans), sum(s.n_neurons for s in scans),
                 config.max_epochs, config.patience, loss, dev)
        for epoch in range(config.max_epochs):
            started = time.perf_counter()
            train_loss = _train_epoch(model, opt, data, config.batch_size, rng, recorder,
                                      data_loss)
            corr = _correlations(model, data, "validation")
            val_corr = float(np.concatenate(list(corr.values())).mean())
            lr = opt.param_groups[0]["lr"]
            plateau.step(val_corr)
            log.info("predictor epoch %d/%d: train loss %.4f, val corr %.3f, lr %.2g, %.1f s",
                     epoch + 1, config.max_epochs, train_loss, val_corr, lr,
                     time.perf_counter() - started)
            if recorder is not None:
                recorder.log_metrics(
                    {
                        "predictor/train_loss": train_loss,
                        "predictor/val_corr": val_corr,
                        "predictor/lr": lr,
                    },
                    epoch,
                )
                recorder.progress(
                    (epoch + 1) / config.max_epochs,
                    f"epoch {epoch + 1}/{config.max_epochs}: val corr {val_corr:.3f}",
                )
            if val_corr > best:
                best, best_epoch = val_corr, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            elif epoch - best_epoch >= config.patience:
                break
        assert best_state is not None  # max_epochs ≥ 1
        log.info("predictive model: best val corr %.3f at epoch %d of %d", best,
                 best_epoch + 1, epoch + 1)
        model.load_state_dict(best_state)
        v = _correlations(model, data, "heldout")
        model.eval()
    if recorder is not None:
        recorder.progress(1.0, f"done: best val corr {best:.3f} at epoch {best_epoch + 1}")
    return FitResult(
        model=model,
        config=config,
        stats=stats,
        v=v,
        val_corr=best,
        epochs=epoch + 1,
        best_epoch=best_epoch,
        seconds=time.perf_counter() - start,
        loss=loss,
    )


@torch.no_grad()
def predict(
    result: FitResult,
    scan_name: str,
    images: np.ndarray,
    behavior: np.ndarray | None = None,
    *,
    batch_size: int = _EVAL_BATCH,
) -> np.ndarray:
    """Predicted responses of one scan's neurons, in the scan's response units.

    Args:
        result: a fitted predictor.
        scan_name: whose neurons to predict.
        images: (N, 1, 36, 64) in [0, 1].
        behavior: (N, 4) raw behaviour (columns ``BEHAVIOR``); None holds it at the scan's
            train-tier mean, giving the response to the image alone (the denoised ρ̂).
        batch_size: images per forward pass.

    Returns:
        (N, A) float32 predictions.
    """
    if scan_name not in result.stats:
        raise KeyError(f"unknown scan {scan_name!r}; known: {list(result.stats)}")
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[1:] != STIMULUS_SHAPE:
        raise ValueError(f"images must be (N, 1, 36, 64), got {images.shape}")
    stats = result.stats[scan_name]
    n = images.shape[0]
    if behavior is None:  # standardized mean behaviour is 0
        z = np.zeros((n, 4), np.float32)
    else:
        behavior = np.asarray(behavior)
        if behavior.shape != (n, 4):
            raise ValueError(f"behavior must be ({n}, 4), got {behavior.shape}")
        z = stats.standardize(behavior)
    model = result.model.eval()
    dev = next(model.parameters()).device
    out = [np.zeros((0, stats.response_scale.size), np.float32)]
    for i in range(0, n, batch_size):
        x = torch.from_numpy(images[i : i + batch_size]).to(dev)
        b = torch.from_numpy(z[i : i + batch_size]).to(dev)
        out.append(model(x, scan_name, b).cpu().numpy())
    return (np.concatenate(out) * stats.response_scale).astype(np.float32)
