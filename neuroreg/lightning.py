"""A Lightning logger that writes into neuroreg through its own client, without MLflow:

    from neuroreg.lightning import NeuroregLogger

    trainer = lightning.Trainer(logger=NeuroregLogger("resnet18 α=8", tags=["fig4"]))

The run is an external run, created when Lightning first logs (its hyperparameters become
the run's params). Metrics are kept in memory and sent in batches — every ``flush_every``
points or ``flush_seconds``, at each checkpoint save and at the end — so a training step
does not wait on the network; Lightning's ``MLFlowLogger`` sends each step's metrics in a
request of its own (``bench/lightning_loggers.py`` measures both). The run ends
``succeeded`` or ``failed`` with the fit. Lightning (``lightning`` or ``pytorch_lightning``)
is the caller's: neuroreg does not depend on it.
"""

from __future__ import annotations

import time
from argparse import Namespace
from collections.abc import Mapping, Sequence
from typing import Any

try:
    from lightning.pytorch.loggers.logger import Logger
    from lightning.pytorch.utilities import rank_zero_only
except ImportError:  # the older package name
    from pytorch_lightning.loggers.logger import Logger  # type: ignore[no-redef]
    from pytorch_lightning.utilities import rank_zero_only  # type: ignore[no-redef]

from neuroreg.client import Client


def _flat(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested hyperparameters as one level, ``a.b`` keys; values JSON can hold."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Namespace):
            value = vars(value)
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{name}."))
        elif value is None or isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            out[name] = str(value)
    return out


class NeuroregLogger(Logger):  # type: ignore[misc]
    """Lightning's logger interface on :class:`neuroreg.client.Client`.

    Args:
        name: the run's name.
        tags: the run's tags.
        client: a client (default: ``Client()``, from ``NEUROREG_API_URL`` and
            ``NEUROREG_TOKEN``).
        flush_every: send once this many points are waiting…
        flush_seconds: …or the oldest has waited this long.
    """

    def __init__(self, name: str = "", *, tags: Sequence[str] = (), client: Client | None = None,
                 flush_every: int = 1000, flush_seconds: float = 2.0) -> None:
        super().__init__()
        self._client = client if client is not None else Client()
        self._run_name, self._tags = name, list(tags)
        self._params: dict[str, Any] = {}
        self._run: dict[str, Any] | None = None
        self._points: list[tuple[str, int, float]] = []
        self._since = time.monotonic()
        self._finished = False
        self.flush_every, self.flush_seconds = flush_every, flush_seconds

    @property
    def name(self) -> str:
        return "neuroreg"

    @property
    def version(self) -> int | str:
        return self.run_id

    @property
    def run_id(self) -> int | str:
        """The run's id (created on first use)."""
        return self._ensure()["id"]

    def _ensure(self) -> dict[str, Any]:
        if self._run is None:
            self._run = self._client.create_external(self._run_name, params=self._params,
                                                     tags=self._tags)
        return self._run

    @rank_zero_only  # type: ignore[misc]
    def log_hyperparams(self, params: Mapping[str, Any] | Namespace, *args: Any,
                        **kwargs: Any) -> None:
        """The run's params: given before the run exists (Lightning logs them at the start
        of a fit), they are its ``config.params``; afterwards they go into its log, since a
        run's params are set once."""
        flat = _flat(vars(params) if isinstance(params, Namespace) else params)
        if self._run is None:
            self._params.update(flat)
        else:
            self._client.log(self._run["id"], [f"hyperparameter {k} = {v!r}"
                                                for k, v in sorted(flat.items())])

    @rank_zero_only  # type: ignore[misc]
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        step = 0 if step is None else int(step)
        self._points.extend((k, step, float(v)) for k, v in metrics.items())
        if len(self._points) >= self.flush_every or \
                time.monotonic() - self._since >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Send what is waiting."""
        points, self._points = self._points, []
        self._since = time.monotonic()
        if points:
            self._client.log_batch(self._ensure()["id"], points)

    @rank_zero_only  # type: ignore[misc]
    def save(self) -> None:
        """Lightning calls this after every ``log_metrics``: sending here would be a request
        per step again (measured: 4.4 ms a step). What is waiting goes when due (above),
        and at the end of the fit, which ends in :meth:`finalize` whether it failed or not."""

    @rank_zero_only  # type: ignore[misc]
    def finalize(self, status: str) -> None:
        self.flush()
        if self._finished:  # a second fit on the same logger: its run has ended
            return
        self._finished = True
        run = self._ensure()
        self._client.finish(run["id"], status="succeeded" if status == "success" else "failed")
