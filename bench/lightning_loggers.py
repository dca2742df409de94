"""What logging costs a Lightning training loop, side by side in one run: no logger, a
logger that does nothing (what Lightning itself adds once a logger is there: the baseline
of the "logging ms/step" column), Lightning's ``MLFlowLogger`` into neuroreg's
MLflow-compatible API, and neuroreg's own ``NeuroregLogger`` (batched), both into the same
local neuroreg server (SQLite).

A tiny model (a linear layer on 32 features) so that the step itself costs little and
the logger's share shows; every step logs two metrics (``log_every_n_steps=1``). Each
variant is a fresh process of the ``mlflow`` environment (tests/mlflowenv.py:
the pinned CPU torch, lightning, mlflow-skinny), timed around ``trainer.fit`` only, best
of ``--repeats``. Prints a table, then one JSON line.

    .venv/bin/python bench/lightning_loggers.py [--steps 400] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from ingest import start_api  # noqa: E402

from tests.mlflowenv import mlflow_python  # noqa: E402

FIT = """
import json, os, sys, time
import torch
import lightning as L

variant, steps = sys.argv[1], int(sys.argv[2])


class Tiny(L.LightningModule):
    def __init__(self, lr=0.05):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Linear(32, 2)

    def training_step(self, batch, i):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        self.log("lr", self.hparams.lr)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


torch.manual_seed(0)
torch.set_num_threads(1)
data = torch.utils.data.TensorDataset(torch.randn(steps * 8, 32), torch.randint(0, 2, (steps * 8,)))
if variant == "none":
    logger = False
elif variant == "null":  # a logger that does nothing: what Lightning itself adds
    from lightning.pytorch.loggers.logger import Logger

    class Null(Logger):
        name, version = "null", 0

        def log_hyperparams(self, params, *args, **kwargs):
            pass

        def log_metrics(self, metrics, step=None):
            pass

    logger = Null()
elif variant == "mlflow":
    from lightning.pytorch.loggers import MLFlowLogger
    logger = MLFlowLogger(experiment_name="bench", tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
else:
    from neuroreg.lightning import NeuroregLogger
    logger = NeuroregLogger("bench")
trainer = L.Trainer(max_epochs=1, logger=logger, log_every_n_steps=1, accelerator="cpu",
                    enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False)
t0 = time.perf_counter()
trainer.fit(Tiny(), torch.utils.data.DataLoader(data, batch_size=8))
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""

VARIANTS = ("none", "null", "mlflow", "neuroreg")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    python = str(mlflow_python())
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_api(Path(tmp) / "neuroreg", None)
        try:
            token = (Path(tmp) / "neuroreg" / "admin-token").read_text().strip()
            env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
            env.update({"MLFLOW_TRACKING_URI": url, "MLFLOW_TRACKING_TOKEN": token,
                        "NEUROREG_API_URL": url, "NEUROREG_TOKEN": token,
                        "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
            for _ in range(args.repeats):  # interleaved: load drifts hit every variant
                for variant in VARIANTS:
                    done = subprocess.run([python, "-c", FIT, variant, str(args.steps)],
                                          env=env, capture_output=True, text=True, cwd=tmp)
                    if done.returncode != 0:
                        raise RuntimeError(f"{variant} failed:\n{done.stderr[-3000:]}")
                    seconds = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
                    best[variant] = min(best.get(variant, seconds), seconds)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    base = best["null"]  # a logger's own cost: over a logger that does nothing
    print(f"{'logger':<10}{'fit s':>10}{'ms/step':>10}{'logging ms/step':>18}{'× null':>10}")
    for v in VARIANTS:
        print(f"{v:<10}{best[v]:>10.2f}{1000 * best[v] / args.steps:>10.2f}"
              f"{1000 * (best[v] - base) / args.steps:>18.2f}{best[v] / base:>10.2f}")
    out = {"bench": "lightning_loggers", "steps": args.steps, "repeats": args.repeats,
           "cpus": os.cpu_count(), "load": os.getloadavg()[0],
           **{f"{v}_s": round(best[v], 3) for v in VARIANTS},
           "mlflow_logger_ms_per_step": round(1000 * (best["mlflow"] - base) / args.steps, 3),
           "neuroreg_logger_ms_per_step": round(1000 * (best["neuroreg"] - base) / args.steps, 3),
           "mlflow_over_neuroreg": round((best["mlflow"] - base)
                                         / max(best["neuroreg"] - base, 1e-9), 1)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
