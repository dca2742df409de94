"""The loggers labs already use, unchanged, into neuroreg through its MLflow-compatible
API: Lightning's ``MLFlowLogger`` and a Hugging Face ``Trainer`` with
``report_to="mlflow"``; and neuroreg's own Lightning logger. Each trains a tiny model
offline (tests/mlflowenv.py's environment)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mlflowenv import api_get as _api
from tests.mlflowenv import run_script

pytestmark = pytest.mark.no_numerics
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
           "TOKENIZERS_PARALLELISM": "false", "CUDA_VISIBLE_DEVICES": ""}


LIGHTNING = """
import json, os
import torch
import lightning as L
from lightning.pytorch.loggers import MLFlowLogger


class Tiny(L.LightningModule):
    def __init__(self, lr=0.1, width=4):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Linear(width, 2)

    def training_step(self, batch, i):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


torch.manual_seed(0)
data = torch.utils.data.TensorDataset(torch.randn(64, 4), torch.randint(0, 2, (64,)))
logger = MLFlowLogger(experiment_name="lightning", run_name="tiny",
                      tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
trainer = L.Trainer(max_epochs=2, logger=logger, log_every_n_steps=1, accelerator="cpu",
                    enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False)
trainer.fit(Tiny(), torch.utils.data.DataLoader(data, batch_size=16))
print(json.dumps({"run_id": logger.run_id}))
"""


def test_lightnings_mlflow_logger_logs_into_neuroreg_unchanged(  # type: ignore[no-untyped-def]
        served, tmp_path: Path) -> None:
    url, token = served
    seen = run_script(LIGHTNING, url, token, tmp_path, env=OFFLINE)
    run = _api(url, token, f"/api/runs/{seen['run_id']}")
    assert run["kind"] == "external" and run["owner"] == "ada" and run["name"] == "tiny"
    assert run["status"] == "succeeded" and "exp:lightning" in run["tags"]
    assert run["config"]["params"] == {"lr": "0.1", "width": "4"}
    loss = _api(url, token, f"/api/runs/{run['id']}/metrics/train_loss")
    assert loss["steps"] == list(range(8))  # 64 samples / 16 a batch × 2 epochs
    assert all(0 < v < 5 for v in loss["values"])
    epoch = _api(url, token, f"/api/runs/{run['id']}/metrics/epoch")
    assert set(epoch["values"]) == {0.0, 1.0}


HF = """
import json, os
import mlflow
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

torch.manual_seed(0)
model = BertForSequenceClassification(BertConfig(
    vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
    intermediate_size=16, max_position_embeddings=16, num_labels=2))


class Data(torch.utils.data.Dataset):
    def __len__(self):
        return 32

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return {"input_ids": torch.randint(0, 32, (8,), generator=g), "labels": torch.tensor(i % 2)}


os.environ["MLFLOW_EXPERIMENT_NAME"] = "hf"
args = TrainingArguments(output_dir="out", report_to=["mlflow"], run_name="tiny-bert",
                         max_steps=4, per_device_train_batch_size=8, logging_steps=1,
                         save_strategy="no", use_cpu=True)
Trainer(model=model, args=args, train_dataset=Data()).train()
print(json.dumps({"run_id": mlflow.last_active_run().info.run_id}))
"""


def test_a_hugging_face_trainer_reports_to_neuroreg_through_mlflow(  # type: ignore[no-untyped-def]
        served, tmp_path: Path) -> None:
    url, token = served
    seen = run_script(HF, url, token, tmp_path, env=OFFLINE)
    run = _api(url, token, f"/api/runs/{seen['run_id']}")
    assert run["kind"] == "external" and run["name"] == "tiny-bert"
    assert run["status"] == "succeeded" and "exp:hf" in run["tags"]
    params = run["config"]["params"]
    assert params["max_steps"] == "4" and params["per_device_train_batch_size"] == "8"
    assert params["hidden_size"] == "8"  # the model's config too
    loss = _api(url, token, f"/api/runs/{run['id']}/metrics/loss")
    assert loss["steps"] == [1, 2, 3, 4]
    keys = {k["key"] for k in _api(url, token, f"/api/runs/{run['id']}/metrics")}
    assert {"loss", "learning_rate", "train_runtime", "train_loss"} <= keys


NATIVE = LIGHTNING.replace(
    "from lightning.pytorch.loggers import MLFlowLogger",
    "from neuroreg.lightning import NeuroregLogger").replace(
    """logger = MLFlowLogger(experiment_name="lightning", run_name="tiny",
                      tracking_uri=os.environ["MLFLOW_TRACKING_URI"])""",
    """logger = NeuroregLogger("tiny", tags=["lightning"], flush_seconds=3600)""")


def test_neuroregs_own_lightning_logger_batches_and_ends_the_run(  # type: ignore[no-untyped-def]
        served, tmp_path: Path) -> None:
    url, token = served
    assert "NeuroregLogger(" in NATIVE and "MLFlowLogger" not in NATIVE
    seen = run_script(NATIVE, url, token, tmp_path, env=OFFLINE)
    run = _api(url, token, f"/api/runs/{seen['run_id']}")
    assert run["kind"] == "external" and run["owner"] == "ada" and run["name"] == "tiny"
    assert run["status"] == "succeeded" and run["tags"] == ["lightning"]
    assert run["config"]["params"] == {"lr": 0.1, "width": 4}  # numbers stay numbers
    loss = _api(url, token, f"/api/runs/{run['id']}/metrics/train_loss")
    assert loss["steps"] == list(range(8)) and all(0 < v < 5 for v in loss["values"])


def test_the_docs_lightning_block_runs_as_written(  # type: ignore[no-untyped-def]
        served, tmp_path: Path) -> None:
    import re

    url, token = served
    text = (Path(__file__).parents[2] / "docs" / "mlflow.md").read_text()
    start = text.index("neuroreg also has a Lightning logger")
    block = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert block is not None
    printed = run_script(block.group(1) + "print(type(trainer.logger).__name__)\n", url, token,
                         tmp_path, env=OFFLINE, raw=True)
    assert printed.strip().splitlines()[-1] == "NeuroregLogger"
