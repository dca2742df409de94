"""An S3-speaking server for the object-store tests: moto's (``moto_server``), from its
own environment (:func:`tests.mlflowenv.mlflow_python`, ``.cache/s3``), on a free port,
with a bucket made for each test. It keeps everything in memory: stopped and started
again, it is empty (an outage that lost nothing of ours is checked by what the API kept)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.livesrv import free_port
from tests.mlflowenv import mlflow_python

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "neuroreg-test", "AWS_SECRET_ACCESS_KEY": "not-a-secret",
               "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class S3Server:
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        python = mlflow_python("s3")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(python.parent / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:  # readiness: it answers
            try:
                httpx.get(f"{self.endpoint}/moto-api/", timeout=1)
                return
            except httpx.TransportError:
                assert self.proc.poll() is None, self.log.read_text(errors="replace")
                assert time.monotonic() < deadline, self.log.read_text(errors="replace")
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            self.proc = None

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint)

    def bucket(self) -> str:
        name = f"neuroreg-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


@contextmanager
def s3_server(tmp_path: Path) -> Iterator[S3Server]:
    """A running server, the AWS variables set for boto3 in this process."""
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    server = S3Server(free_port(), tmp_path / "moto.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
