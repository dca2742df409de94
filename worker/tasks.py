"""Tasks: each takes a run id, calls one ml function through a SqlRecorder. Everything
a task does to the store goes through the worker's :class:`~worker.backend.Backend`: the
database itself, or the server's API with a worker token."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from core.kinds import KINDS, Waiting
from core.settings import get_settings
from core.store.models import RunStatus
from ml.recorder import Cancelled, Recorder
from worker import shutdown
from worker.app import task
from worker.backend import Backend, get_backend
from worker.capture import Capture, capture_logs
from worker.observe import record_provenance, system_metrics
from worker.recorder import SqlRecorder

log = logging.getLogger(__name__)

Job = Callable[[Any, SqlRecorder], Any]


def _error_text(exc: BaseException) -> str:
    """The exception's message and where it was raised, without the whole traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"[:4000]


def WORKER_ID() -> str:  # noqa: N802 (reads like the constant it is, per process)
    """``host:pid``, and in a SLURM job ``host:pid slurm:<job id>`` (an array task's
    ``<array job>_<task>``): ``neuroreg slurm status`` finds each job's runs by it."""
    ident = f"{socket.gethostname()}:{os.getpid()}"
    job = os.environ.get("SLURM_JOB_ID")
    if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return f"{ident} slurm:{job}" if job else ident


def _dead_here(worker: str | None) -> bool:
    """True when ``worker`` ran on this host and its process is gone: a redelivered
    task (its pool process was killed) may take the run over at once."""
    worker = worker.split()[0] if worker else worker
    if not worker or ":" not in worker:
        return False
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@contextlib.contextmanager
def heartbeat(backend: Backend, run_id: int, interval: float) -> Iterator[None]:
    """Beat for ``run_id`` every ``interval`` s from a thread, whatever the job is doing
    (a long numba compile or eigh included), until the block ends."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            with contextlib.suppress(Exception):  # a database blip must not kill the job
                backend.beat(run_id)

    thread = threading.Thread(target=loop, name=f"heartbeat-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def _start(run_id: int) -> tuple[str, dict[str, Any]] | None:
    """Take a stored run (queued, or running with a dead worker): its kind and config, or
    None when it is finished or another worker holds it."""
    backend = get_backend()
    got = backend.claim(run_id, WORKER_ID())
    if got is not None and got.kind is None and _dead_here(got.holder):
        got = backend.claim(run_id, WORKER_ID(), takeover=got.holder)
    if got is None or got.kind is None:
        return None
    return got.kind, got.config or {}


def execute(run_id: int, job: Job) -> dict[str, Any]:
    """Run ``job`` for a stored run and move it through its statuses."""
    started = _start(run_id)
    if started is None:
        return {"run_id": run_id, "skipped": True}
    return _run_started(run_id, job, *started)


def _run_started(run_id: int, job: Job, kind: str, stored: dict[str, Any]) -> dict[str, Any]:
    settings, backend = get_settings(), get_backend()
    recorder = SqlRecorder(backend=backend, run_id=run_id)
    record_provenance(backend, run_id)
    with (heartbeat(backend, run_id, settings.heartbeat_s),
          capture_logs(backend, run_id, max_bytes=settings.log_max_bytes) as logs,
          system_metrics(backend, run_id, settings.system_metrics_s)):
        if logs.sink is not None:  # a part's end pushes its log lines with its points
            recorder.also_flush(logs.sink.flush)
        return _execute(run_id, job, kind, stored, recorder, logs=logs)


def _execute(run_id: int, job: Job, kind: str, stored: dict[str, Any],
             recorder: SqlRecorder, *, logs: Capture | None = None) -> dict[str, Any]:
    """The one lifecycle of every kind: the job runs on the stored config (its output
    captured into ``logs``, kept as the run's logs.txt before it finishes), then the run
    finishes — or, when the job fanned out (:class:`~core.kinds.Waiting`), stays running
    with its children queued, and the last of them to finish finishes it."""
    backend = recorder.backend
    status: RunStatus = RunStatus.succeeded
    error: str | None = None
    result: Any = None
    waiting: Waiting | None = None
    released = False  # handed back to the queue by a worker shutting down
    try:
        out = job(KINDS[kind].config_type(**stored), recorder)
        if isinstance(out, Waiting):
            waiting = out
        elif dataclasses.is_dataclass(out) and not isinstance(out, type):
            result = dataclasses.asdict(out)
        else:
            result = out
    except Cancelled:
        status = RunStatus.cancelled
        released = shutdown.requested()  # this worker is going away, not the run
    except Exception as exc:  # the run records any failure; the task itself succeeds
        status, error = RunStatus.failed, _error_text(exc)
    finally:
        try:
            recorder.close()  # the rest of its points, and its flusher stopped
            if logs is not None:
                logs.end()
                if not released:
                    _keep_logs(backend, run_id)
        finally:
            if released:
                _release(backend, run_id)
            elif waiting is None:  # queues a succeeded study child's evaluation
                backend.finish(run_id, status, error=error, result=result)
    if waiting is not None:
        backend.enqueue(run_id, [r for r, _ in waiting.children], waiting.packs)
        return {"run_id": run_id, "status": "running", "children": len(waiting.children)}
    if released:
        return {"run_id": run_id, "status": "requeued"}
    return {"run_id": run_id, "status": status.value}


def _release(backend: Backend, run_id: int) -> None:
    """Put a run this worker stopped for its shutdown back in the queue (a cancel that
    came meanwhile stands), to resume from its checkpoint in another worker."""
    if backend.release(run_id, WORKER_ID(), (
            "its worker shut down (a SLURM job's end?); requeued to resume from its "
            "last checkpoint")):
        log.warning("run %s handed back to the queue: this worker is shutting down", run_id)


def _keep_logs(backend: Backend, run_id: int) -> None:
    """The run's log as its logs.txt artifact (a failure leaves the lines in the store)."""
    try:
        backend.keep_logs(run_id)
    except Exception:  # noqa: BLE001 — the run's outcome stands without it
        log.warning("run %s: no logs.txt", run_id, exc_info=True)


def train_inputs(backend: Backend, held: int, config: Any) -> dict[str, Path]:
    """Local paths of what a train run reads: ``target`` (the similarity run's artifact)
    and, for cnn-features, ``network`` (``held``: the run the job is for)."""
    from core.inputs import target_source
    from ml import artifacts
    from ml.regularize.targets import REGISTRY

    out: dict[str, Path] = {}
    if config.target == "none":
        return out
    out["target"] = backend.artifact_file(held, config.target_run, target_source(config.target))
    if REGISTRY[config.target].needs_network:
        features = config.features
        if features.weights is not None:
            out["network"] = backend.shared_file(held, "models", features.weights)
        else:
            out["network"] = backend.artifact_file(held, features.run, artifacts.MODEL)
    return out


def _train_target(config: Any, recorder: SqlRecorder | Recorder, held: int | None = None) -> Any:
    """A train run's target, loaded from the store (and its cnn-features network's);
    ``held``: the run the job is for, when not the recorder's (an evaluation's)."""
    from ml.neural.target import SimilarityTarget
    from ml.regularize.targets import Network, resolve_target
    from ml.runtime import pick_device

    backend, run_id = _backend_of(recorder)
    paths = train_inputs(backend, held if held is not None else run_id, config)
    source = SimilarityTarget.load(str(paths["target"])) if "target" in paths else None
    network = None
    if "network" in paths:
        recorder.progress(0.0, "computing the cnn-features target")
        network = Network(paths["network"], config.features.layer,
                          {"stimuli_run": config.target_run})
    return resolve_target(config.target, source, seed=config.seed, network=network,
                          device=pick_device(config.device))


def train_job(config: Any, recorder: Recorder) -> Any:
    """A train run: load its target (and cnn-features network) from the store, train."""
    from ml.train import train_model

    settings = get_settings()
    target = _train_target(config, recorder)
    result = train_model(config, recorder, target, data_root=settings.datasets)
    if config.target_run is not None and isinstance(recorder, SqlRecorder):
        _save_s_cnn_overview(config, recorder)
    return result


def _backend_of(recorder: Any) -> tuple[Backend, int]:
    """The backend a job's recorder writes through, and its run (a recorder that is not
    the worker's — a test's — has neither: the worker's backend and no run)."""
    if isinstance(recorder, SqlRecorder):
        return recorder.backend, recorder.run_id
    return get_backend(), 0


def execute_pack(run_ids: list[int]) -> dict[str, Any]:
    """Train stored train runs as one pack (:mod:`ml.train.pack`): the ones this worker
    can take (a finished or cancelled member, or one another worker holds, is left out;
    one left alone trains as an ordinary run). Each member finishes, is handed back or
    fails on its own, as a run trained apart would."""
    started = [(r, got[1]) for r in run_ids if (got := _start(r)) is not None]
    if not started:
        return {"run_ids": run_ids, "skipped": True}
    if len(started) == 1:
        return _run_started(started[0][0], train_job, "train", started[0][1])
    settings, backend = get_settings(), get_backend()
    ids = [r for r, _ in started]
    recorders = [SqlRecorder(backend=backend, run_id=r) for r in ids]
    configs = [KINDS["train"].config_type(**stored) for _, stored in started]
    for r in ids:
        record_provenance(backend, r)
    with contextlib.ExitStack() as stack:
        for r in ids:
            stack.enter_context(heartbeat(backend, r, settings.heartbeat_s))
            stack.enter_context(system_metrics(backend, r, settings.system_metrics_s))
        logs = stack.enter_context(capture_logs(backend, ids,
                                                max_bytes=settings.log_max_bytes))
        log.info("training runs %s as one pack on one device", ", ".join(map(str, ids)))
        try:
            outcomes = _train_pack(configs, recorders)
        except Exception as exc:  # the pack as a whole could not train: each run says why
            outcomes = [exc] * len(ids)
        for rec in recorders:
            with contextlib.suppress(Exception):
                rec.close()
        logs.end()
    statuses = {}
    for r, outcome in zip(ids, outcomes, strict=True):
        statuses[r] = _end_member(backend, r, outcome)
    return {"run_ids": run_ids, "status": statuses}


def _train_pack(configs: list[Any], recorders: list[SqlRecorder]) -> list[Any]:
    from ml.train.pack import train_pack as train_packed

    settings = get_settings()
    outcomes: list[Any] = [None] * len(configs)
    targets: list[Any] = [None] * len(configs)
    for k, (c, r) in enumerate(zip(configs, recorders, strict=True)):
        try:
            targets[k] = _train_target(c, r)
        except Exception as exc:  # this member cannot train (its input is gone): it alone
            outcomes[k] = exc
    live = [k for k, out in enumerate(outcomes) if out is None]
    if live:
        trained = train_packed([configs[k] for k in live], [recorders[k] for k in live],
                               [targets[k] for k in live], data_root=settings.datasets)
        for k, out in zip(live, trained, strict=True):
            outcomes[k] = out
            if configs[k].target_run is not None and not isinstance(out, BaseException):
                _save_s_cnn_overview(configs[k], recorders[k])
    return outcomes


def _end_member(backend: Backend, run_id: int, outcome: Any) -> str:
    """Finish (or hand back) one member of a pack as :func:`_execute` does a run."""
    if isinstance(outcome, Cancelled) and shutdown.requested():
        _release(backend, run_id)
        return "requeued"
    if isinstance(outcome, Cancelled):
        status, error, result = RunStatus.cancelled, None, None
    elif isinstance(outcome, BaseException):
        status, error, result = RunStatus.failed, _error_text(outcome), None
    else:
        status, error, result = RunStatus.succeeded, None, dataclasses.asdict(outcome)
    _keep_logs(backend, run_id)
    backend.finish(run_id, status, error=error, result=result)
    return status.value


def _save_s_cnn_overview(config: Any, recorder: SqlRecorder) -> None:
    """The dashboard's S_CNN overview of the network just trained, over its target run's
    stimuli (on the worker's device). The training is done by then: if this fails, the
    page asks for it and :func:`s_cnn_overview` computes it."""
    try:
        recorder.progress(1.0, "computing S_CNN over the target's stimuli for the dashboard")
        store_s_cnn_overview(recorder.backend, recorder.run_id, config, sizes=(200,))
        recorder.progress(1.0, "done")
    except Exception:  # noqa: BLE001 — a cache for the dashboard; the training stands
        log.warning("no S_CNN overview for this run", exc_info=True)


def store_s_cnn_overview(backend: Backend, run_id: int, config: Any,
                         sizes: tuple[int, ...]) -> None:
    """Compute a train run's S_CNN overviews at ``sizes`` over its target run's stimuli and
    store them with those it has (:data:`ml.artifacts.S_CNN_OVERVIEW`)."""
    from ml import artifacts
    from ml.neural.target import SimilarityTarget
    from ml.regularize.cnn_features import SCnnOverviews, s_cnn_overviews
    from ml.runtime import pick_device

    model = backend.artifact_file(run_id, run_id, artifacts.MODEL)
    stimuli = backend.artifact_file(run_id, config.target_run, artifacts.target("neural-model"))
    new = s_cnn_overviews(str(model), config.taps, SimilarityTarget.load(str(stimuli)),
                          sizes=sizes, device=pick_device(config.device))
    old = backend.load_artifact(run_id, artifacts.S_CNN_OVERVIEW)
    if old is not None:
        with contextlib.suppress(Exception):  # an unreadable or other network's: replaced
            new = SCnnOverviews.load(old).with_sizes(new)
    backend.save_artifact(run_id, artifacts.S_CNN_OVERVIEW, new.to_bytes(), "application/x-npz")


@task("neuroreg.s_cnn_overview")
def s_cnn_overview(run_id: int, size: int) -> dict[str, Any]:
    """A small job the dashboard asks for: a train run's S_CNN overview at ``size`` when it
    lacks one (run before overviews were stored, or the store failed), so the API process
    never runs a network."""
    from ml import artifacts
    from ml.regularize.cnn_features import SCnnOverviews

    backend = get_backend()
    old = backend.load_artifact(run_id, artifacts.S_CNN_OVERVIEW)
    if old is not None:
        with contextlib.suppress(Exception):
            if size in SCnnOverviews.load(old).sizes:
                return {"run_id": run_id, "skipped": True}  # asked twice
    _, config = backend.config_of(run_id, run_id)
    store_s_cnn_overview(backend, run_id, KINDS["train"].config_type(**config), sizes=(size,))
    return {"run_id": run_id, "size": size}


@task("neuroreg.train")
def train(run_id: int) -> dict[str, Any]:
    return execute(run_id, train_job)


@task("neuroreg.train_pack")
def train_pack(run_ids: list[int]) -> dict[str, Any]:
    """Train runs as one pack (a study's ``pack``); each stays an ordinary run."""
    return execute_pack(run_ids)


def similarity_job(config: Any, recorder: Recorder) -> dict[str, Any]:
    """A similarity run: its recording (under the server's root, or fetched from it),
    then analyse."""
    from ml.neural.pipeline import run_similarity

    if config.source == "recording":
        backend, run_id = _backend_of(recorder)
        path = backend.shared_file(run_id, "recordings", config.recording)
        config = dataclasses.replace(config, recording=str(path))
    return run_similarity(config, recorder).summary()


@task("neuroreg.similarity")
def similarity(run_id: int) -> dict[str, Any]:
    return execute(run_id, similarity_job)


def evaluate_job(config: Any, recorder: Recorder) -> Any:
    """An evaluate run: the train run's model.pt on the test split of its dataset; for
    ``soundness`` the reference run's model.pt beside it, for ``mechanism`` the training
    images and the target the model's layers are compared with."""
    from ml import artifacts
    from ml.data import load_dataset
    from ml.evaluate import evaluate_model
    from ml.models.checkpoint import read_checkpoint
    from ml.train.classifier import load_model

    settings = get_settings()
    backend, held = _backend_of(recorder)
    path = backend.artifact_file(held, config.train_run, artifacts.MODEL)
    reference_path = backend.artifact_file(held, config.reference_run, artifacts.MODEL) \
        if config.reference_run is not None and "soundness" in config.runs else None
    checkpoint = read_checkpoint(str(path))  # read once: the model and the tap target use it
    model, train_config = load_model(checkpoint)
    reference = load_model(str(reference_path))[0] if reference_path is not None else None
    data = load_dataset(train_config.dataset, seed=train_config.seed,
                        root=settings.datasets)
    published = None
    if config.corruption_source == "published":  # the server checked the folder is there
        from ml.data import cifar_c

        folder = cifar_c.locate(settings.datasets, train_config.dataset)
        if folder is None:
            raise ValueError(f"corruption_source: no {cifar_c.FOLDERS.get(train_config.dataset)}"
                             f" folder in {settings.datasets}")
        published = cifar_c.published_source(folder, channels=int(data.test_images.shape[1]),
                                             test_labels=data.test_labels)
    tap_target = _tap_target(config, train_config, checkpoint, recorder) \
        if "mechanism" in config.runs else None
    held_out = _alignment_inputs(config, checkpoint, backend, held) \
        if {"alignment", "percept"} & set(config.runs) else None
    return evaluate_model(config, recorder, model, data.test_images, data.test_labels,
                          num_classes=data.num_classes, published=published,
                          reference=reference, train_images=data.train_images,
                          tap_target=tap_target, alignment_inputs=held_out)


def _alignment_inputs(config: Any, checkpoint: dict[str, Any], backend: Backend,
                      held: int) -> Any:
    """The similarity run's held-out stimuli for the alignment and percept parts: its
    stored config and predictor (loaded once: the percept part predicts with it too), and
    for a recording its path resolved under the recordings root now."""
    from ml import artifacts
    from ml.evaluate.alignment_inputs import AlignmentInputs, load_heldout, load_predictor

    _, stored = backend.config_of(held, config.similarity_run)
    config_path = backend.artifact_file(held, config.similarity_run, artifacts.CONFIG)
    predictor_path = backend.artifact_file(held, config.similarity_run, artifacts.PREDICTOR)
    recording = backend.shared_file(held, "recordings", stored["recording"]) \
        if stored.get("source") == "recording" else None
    fit = load_predictor(predictor_path)
    return AlignmentInputs(checkpoint, load_heldout(config_path, predictor_path,
                                                    recording=recording, fit=fit),
                           f"similarity run {config.similarity_run}", fit=fit)


def _tap_target(config: Any, train_config: Any, checkpoint: dict[str, Any],
                recorder: Recorder) -> Any:
    """The target the mechanism part compares the model's layers with: the config's
    similarity run's neural-model target, else the one the model was trained toward
    (loaded as its training loaded it), else None."""
    from ml import artifacts
    from ml.evaluate.mechanism import TapTarget
    from ml.neural.target import SimilarityTarget

    backend, held = _backend_of(recorder)
    if config.similarity_run is not None:
        path = backend.artifact_file(held, config.similarity_run,
                                     artifacts.target("neural-model"))
        return TapTarget(checkpoint, SimilarityTarget.load(str(path)),
                         f"neural-model of similarity run {config.similarity_run}")
    if train_config.target == "none" or train_config.target_run is None:
        return None
    return TapTarget(checkpoint, _train_target(train_config, recorder, held),
                     f"{train_config.target} of similarity run {train_config.target_run} "
                     "(the model's own)")


@task("neuroreg.evaluate")
def evaluate(run_id: int) -> dict[str, Any]:
    return execute(run_id, evaluate_job)


def study_job(config: Any, recorder: SqlRecorder) -> Waiting:
    """A study: its train runs, queued; it finishes when its last child does."""
    from ml.study import packs

    runs = recorder.backend.fan_out(recorder.run_id)
    cells = [(r, KINDS["train"].config_type(**c)) for r, kind, c in runs if kind == "train"]
    grouped = [p for p in packs(cells, config.pack) if len(p) > 1]
    kinds: dict[str, list[int]] = {}
    for r, kind, _ in runs:
        kinds.setdefault(kind, []).append(r)
    log.info("study: %d runs submitted (%s)%s", len(runs), "; ".join(
        f"{kind} {', '.join(map(str, ids))}" for kind, ids in kinds.items()),
        f"; {len(grouped)} packs of {', '.join(str(len(p)) for p in grouped)}"
        if grouped else "")
    return Waiting([(r, kind) for r, kind, _ in runs], grouped)


@task("neuroreg.study")
def study(run_id: int) -> dict[str, Any]:
    return execute(run_id, study_job)
