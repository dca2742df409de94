"""What a run reads besides its config, checked at submission and loaded by the worker.

- similarity: a recording under ``Settings.recordings``;
- train: a CIFAR archive under ``Settings.datasets``; the ``similarity`` run named by
  ``config.target_run`` (its target artifact and stimuli; for ``neural-true`` a simulated
  one, the only kind with a noise-free S_true); for ``cnn-features`` a network
  file under ``Settings.models`` or a succeeded ``train`` run's ``model.pt``;
- evaluate: the succeeded ``train`` run named by ``config.train_run`` (its ``model.pt``)
  and that run's dataset; for ``corruption_source: published`` the CIFAR-C folder beside
  it with a file per chosen corruption; for the ``alignment`` part the ``similarity_run``
  with its ``predictor.pt`` and ``config.json`` (its held-out stimuli are rebuilt from them).

Every refusal is a :class:`NotFound` naming the request field, which the API turns into
a 422 before anything is stored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from core import recordings
from core.settings import Settings
from core.store.artifacts import get_artifact, resolve
from core.store.models import Run, RunStatus
from core.store.runs import NotFound, find_run
from ml import artifacts
from ml.data.cifar import ARCHIVES, locate
from ml.regularize.targets import REGISTRY, source_kind


def target_source(target: str) -> str:
    """The similarity run's artifact a train target is read from (its registry entry's
    ``source``: the targets built rather than stored — ``random``, ``random-matched``,
    ``pixel``, ``cnn-features`` — take the neural-model target's stimuli)."""
    return artifacts.target(source_kind(target))


def _succeeded_run(session: Session, run_id: int, kind: str, artifact: str, field: str) -> Run:
    run = find_run(session, run_id)
    if run is None:
        raise NotFound(f"run {run_id} does not exist", field=field)
    if run.kind != kind:
        raise NotFound(f"run {run_id} is a {run.kind} run, not a {kind} run", field=field)
    if run.status is not RunStatus.succeeded:
        raise NotFound(f"run {run_id} is {run.status.value}; it must have succeeded",
                       field=field)
    if get_artifact(session, run_id, artifact) is None:
        raise NotFound(f"run {run_id} has no {artifact}", field=field)
    return run


def _check_dataset(settings: Settings, dataset: str, field: str) -> None:
    if dataset in ARCHIVES and locate(settings.datasets, dataset) is None:
        raise NotFound(
            f"{dataset} is not in {settings.datasets}: put {ARCHIVES[dataset].file} there "
            f"(or run `neuroreg datasets download {dataset}` where the internet is "
            "reachable)", field=field)


def check_inputs(session: Session, settings: Settings, *, kind: str, config: Any) -> int | None:
    """Refuse a run whose inputs the worker could not read; return the run it reads from
    (the lineage link), if any. Each kind's check is its registry entry's
    (:data:`core.kinds.KINDS`)."""
    from core.kinds import KINDS

    return KINDS[kind].check(session, settings, config)


def check_nothing(session: Session, settings: Settings, config: Any) -> int | None:
    """A kind that reads no stored input (an external run)."""
    return None


def check_similarity(session: Session, settings: Settings, config: Any) -> int | None:
    """A recording it names must exist under the recordings root; importer options
    need an NWB file among it."""
    if config.source == "recording":
        path = recordings.resolve(settings.recordings, config.recording)
        given = config.importer.given()
        nwb = path.suffix.lower() == ".nwb" or (path.is_dir() and any(
            p.suffix.lower() == ".nwb" for p in path.iterdir()))
        if given and not nwb:
            raise NotFound(f"{', '.join(given)} apply to NWB files, and "
                           f"{config.recording!r} holds none", field="config.importer")
    return None


def check_evaluate(session: Session, settings: Settings, config: Any) -> int | None:
    """The succeeded train run with a model it evaluates, on a dataset this server has."""
    if config.train_run is None:
        raise NotFound("an evaluation needs the id of a succeeded train run",
                       field="config.train_run")
    run = _succeeded_run(session, config.train_run, "train", artifacts.MODEL,
                         "config.train_run")
    dataset = run.config.get("dataset", "digits32")
    _check_dataset(settings, dataset, "config.train_run")
    if config.corruption_source == "published" and "corruptions" in config.runs:
        _check_published(settings, dataset, config.corruptions)
    _check_evaluate_reads(session, config, dataset, "config.")
    return int(config.train_run)


def _check_evaluate_reads(session: Session, config: Any, dataset: str | None,
                          prefix: str) -> None:
    """The other runs an evaluation reads: ``reference_run``, a succeeded train run with a
    model of the same dataset (not the evaluated one), and ``similarity_run``, a
    succeeded similarity run with a neural-model target (and, for the alignment and
    percept parts, its predictor and config)."""
    if config.reference_run is not None:
        field = f"{prefix}reference_run"
        if config.reference_run == config.train_run:
            raise NotFound("the reference model must be another train run than the one "
                           "evaluated (its perturbations are the white-box ones)", field=field)
        ref = _succeeded_run(session, config.reference_run, "train", artifacts.MODEL, field)
        theirs = ref.config.get("dataset", "digits32")
        if dataset is not None and theirs != dataset:
            raise NotFound(f"run {config.reference_run} learnt {theirs}, the evaluated model "
                           f"{dataset}: a reference must see the same images", field=field)
    if config.similarity_run is not None:
        _succeeded_run(session, config.similarity_run, "similarity",
                       artifacts.target("neural-model"), f"{prefix}similarity_run")
    reading = [p for p in ("alignment", "percept") if p in config.runs]
    if reading:  # both read its predictor (and the held-out stimuli of its config)
        field = f"{prefix}similarity_run"
        if config.similarity_run is None:  # the config refuses it too; a study's template
            raise NotFound(f"the {' and '.join(reading)} part{'s' if len(reading) > 1 else ''}"
                           f" need{'' if len(reading) > 1 else 's'} a succeeded similarity "
                           "run", field=field)
        for name in (artifacts.PREDICTOR, artifacts.CONFIG):
            _succeeded_run(session, config.similarity_run, "similarity", name, field)


def _check_published(settings: Settings, dataset: str, names: Sequence[str]) -> None:
    """The published CIFAR-C folder of ``dataset`` with a file per chosen corruption."""
    from ml.data import cifar_c

    field = "config.corruption_source"
    if dataset not in cifar_c.FOLDERS:
        raise NotFound(f"published corruptions exist for {sorted(cifar_c.FOLDERS)}, not "
                       f"{dataset}: use corruption_source: generated", field=field)
    folder = cifar_c.locate(settings.datasets, dataset)
    if folder is None:
        raise NotFound(f"no {cifar_c.FOLDERS[dataset]} folder in {settings.datasets}: "
                       f"extract {cifar_c.FOLDERS[dataset]}.tar there (Hendrycks & "
                       "Dietterich's release), or use corruption_source: generated",
                       field=field)
    lacking = cifar_c.missing(folder, names)
    if lacking:
        raise NotFound(f"{folder} lacks {', '.join(lacking)}", field=field)


def check_train(session: Session, settings: Settings, config: Any) -> int | None:
    """Its dataset, the similarity run its target is built over (a simulated one for
    ``neural-true``), and cnn-features' network."""
    _check_dataset(settings, config.dataset, "config.dataset")
    if config.target == "none":
        return None
    if config.target_run is None:
        raise NotFound(f"target {config.target!r} needs the id of a succeeded similarity run",
                       field="config.target_run")
    if REGISTRY[config.target].needs_simulation:
        _check_simulated(session, config.target_run, config.target)
    _succeeded_run(session, config.target_run, "similarity", target_source(config.target),
                   "config.target_run")
    if REGISTRY[config.target].needs_network:
        features = config.features
        if features is None or (features.weights is None and features.run is None):
            raise NotFound("cnn-features needs features.weights (a file under "
                           f"{settings.models}) or features.run (a train run)",
                           field="config.features")
        if features.weights is not None:
            recordings.resolve(settings.models, features.weights, "config.features.weights")
        else:
            _succeeded_run(session, features.run, "train", artifacts.MODEL,
                           "config.features.run")
    return int(config.target_run)


def _check_simulated(session: Session, run_id: int, target: str) -> None:
    """A target only a simulation stores (``neural-true``) asked of a similarity run that
    analysed a recording: the target is what cannot be had, so the refusal names it."""
    run = find_run(session, run_id)
    if run is not None and run.kind == "similarity" and \
            (run.config or {}).get("source", "simulated") != "simulated":
        raise NotFound(f"similarity run {run_id} has no S_true, so no {target!r} target: it "
                       "analysed a recording, not a simulation, and only a simulation "
                       "knows its noise-free similarity; pick a simulated similarity run "
                       "or another target", field="config.target")


def check_study(session: Session, settings: Settings, config: Any) -> int | None:
    """Every cell's train inputs, checked once per distinct kind of cell. An error names
    the study's field: its own (target_run, features) or the train template's."""
    from ml.study import StudyConfig, study_cells

    own = {f.name for f in dataclasses.fields(StudyConfig)}
    seen: set[str] = set()
    for cell in study_cells(config):
        if cell.condition in seen:
            continue
        seen.add(cell.condition)
        try:
            check_train(session, settings, cell.train)
        except NotFound as exc:
            field = (exc.field or "").removeprefix("config.")
            if field == "target":  # a cell's target is one of the study's conditions
                field = "conditions"
            elif field.split(".")[0] not in own:
                field = f"train.{field}"
            raise NotFound(exc.message, field=f"config.{field}") from None
    ev = config.evaluate
    if ev.corruption_source == "published" and "corruptions" in ev.runs:
        try:
            _check_published(settings, config.train.dataset, ev.corruptions)
        except NotFound as exc:
            raise NotFound(exc.message, field="config.evaluate.corruption_source") from None
    _check_evaluate_reads(session, ev, config.train.dataset, "config.evaluate.")
    return None if config.target_run is None else int(config.target_run)


def artifact_path(session: Session, settings: Settings, run_id: int, name: str) -> Path:
    row = get_artifact(session, run_id, name)
    if row is None:
        raise NotFound(f"run {run_id} has no artifact {name!r}")
    return resolve(settings.artifacts, row.path)
