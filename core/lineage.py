"""Lineage: which artifacts of which runs a run reads, and what is built from a run.

recording → similarity → train → evaluate → study: each run kind reads named artifacts of
the runs its config names (the same ones :mod:`core.inputs` checks before it is queued):

- train: its similarity run's target (``target-<kind>.npz``, the target's registry
  ``source``) and, for cnn-features, a train run's ``model.pt``;
- evaluate: its train run's ``model.pt``, a reference model's ``model.pt``, and its
  similarity run's neural-model target (with ``predictor.pt`` and ``config.json`` for the
  alignment and percept parts);
- study: what its cells' trains and evaluations read (its children record their own too);
- similarity and external runs read no run.

:func:`record_reads` stores them as :class:`~core.store.models.RunRead` rows when a run is
created, so that :func:`dependants` and :func:`graph` are indexed lookups and retention
(:mod:`core.retention`) and run deletion never remove what a kept result depends on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.store.models import Run, RunRead
from ml import artifacts

MAX_NODES = 200
"""The most runs one lineage graph shows (a study of many cells is one node's children)."""


@dataclass(frozen=True)
class Read:
    """Run ``run_id``'s artifact ``artifact``, named by the config field ``field``."""

    run_id: int
    artifact: str
    field: str


def _ref(config: Mapping[str, Any], path: str) -> int | None:
    node: Any = config
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    # a bool is an int to Python; no run id is one
    return node if isinstance(node, int) and not isinstance(node, bool) and node > 0 else None


def _target_reads(config: Mapping[str, Any], targets: Iterable[Any], prefix: str) -> list[Read]:
    from core.inputs import target_source
    from ml.regularize.targets import REGISTRY

    out: list[Read] = []
    run = _ref(config, "target_run")
    if run is not None:
        names = sorted({target_source(t) for t in targets
                        if isinstance(t, str) and t != "none" and t in REGISTRY})
        out += [Read(run, name, f"{prefix}target_run") for name in names]
    features = _ref(config, "features.run")
    if features is not None and any(isinstance(t, str) and t in REGISTRY
                                     and REGISTRY[t].needs_network for t in targets):
        out.append(Read(features, artifacts.MODEL, f"{prefix}features.run"))
    return out


def _evaluate_reads(config: Mapping[str, Any], prefix: str) -> list[Read]:
    out = [Read(run, artifacts.MODEL, f"{prefix}{name}")
           for name in ("train_run", "reference_run")
           if (run := _ref(config, name)) is not None]
    similarity = _ref(config, "similarity_run")
    if similarity is not None:
        names = [artifacts.target("neural-model")]
        parts = config.get("runs") or ()
        if any(p in parts for p in ("alignment", "percept")):
            names += [artifacts.PREDICTOR, artifacts.CONFIG]
        out += [Read(similarity, name, f"{prefix}similarity_run") for name in names]
    return out


def reads(kind: str, config: Any) -> list[Read]:
    """The artifacts a run of ``kind`` with the stored ``config`` reads from other runs
    (none for a config that is not a mapping: an imported run's config is as recorded)."""
    if not isinstance(config, Mapping):
        return []
    if kind == "train":
        return _target_reads(config, [config.get("target", "none")], "config.")
    if kind == "evaluate":
        return _evaluate_reads(config, "config.")
    if kind == "study":
        conditions = config.get("conditions") or ()
        ev = config.get("evaluate")
        return _target_reads(config, conditions if isinstance(conditions, list | tuple)
                             else (), "config.") + (
            _evaluate_reads({k: v for k, v in ev.items() if k != "train_run"},
                            "config.evaluate.") if isinstance(ev, Mapping) else [])
    return []


def record_reads(session: Session, run: Run, *, new: bool = False) -> None:
    """Store (or, for a run that is not ``new``, replace) ``run``'s reads from its
    config; a run it names that does not exist here is left out (the input checks refuse
    such a run before it is stored)."""
    wanted = sorted(set(reads(run.kind, run.config)),
                    key=lambda r: (r.run_id, r.artifact, r.field))
    if not new:
        session.execute(delete(RunRead).where(RunRead.run_id == run.id))
    if not wanted:
        return
    found = set(session.execute(select(Run.id).where(
        Run.id.in_({r.run_id for r in wanted}))).scalars())
    for r in wanted:
        if r.run_id in found and r.run_id != run.id:
            session.add(RunRead(run_id=run.id, input_run_id=r.run_id, artifact=r.artifact,
                                field=r.field))
    session.flush()


@dataclass(frozen=True)
class Dependant:
    """Run ``run_id`` (its kind, name and status) reads ``artifact`` of the run asked
    about."""

    run_id: int
    kind: str
    name: str
    status: str
    artifact: str


def dependants(session: Session, run_ids: Sequence[int]) -> dict[int, list[Dependant]]:
    """For each of ``run_ids``, the runs that read its artifacts (other than those runs
    themselves), by input run id."""
    out: dict[int, list[Dependant]] = {}
    ids = list(run_ids)
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(RunRead.input_run_id, RunRead.artifact, Run.id, Run.kind, Run.name,
                   Run.status)
            .join(Run, Run.id == RunRead.run_id)
            .where(RunRead.input_run_id.in_(ids[start:start + 500]))
            .order_by(RunRead.input_run_id, Run.id, RunRead.artifact)).all()
        for input_id, artifact, run_id, kind, name, status in rows:
            out.setdefault(input_id, []).append(
                Dependant(run_id, kind, name, status.value, artifact))
    return out


@dataclass(frozen=True)
class Edge:
    """``source`` → ``target``: ``target`` reads ``artifacts`` of ``source`` (``relation``
    "reads"), or is one of the runs ``source`` made (``relation`` "part of": a study's
    train and evaluate runs)."""

    source: int
    target: int
    relation: str
    artifacts: tuple[str, ...]


@dataclass(frozen=True)
class Graph:
    """The runs a run was built from and the runs built from it, up to
    :data:`MAX_NODES`; ``depth`` of each run: negative upstream, positive downstream,
    0 the run itself. ``truncated``: more runs were connected than shown."""

    runs: list[Run]
    depth: dict[int, int]
    edges: list[Edge]
    truncated: bool


def graph(session: Session, run: Run, *, max_nodes: int = MAX_NODES) -> Graph:
    """Breadth first up (what it reads, its parent) and down (what reads it, its
    children), each edge kept once."""
    depth = {run.id: 0}
    edges: dict[tuple[int, int, str], set[str]] = {}
    truncated = False
    for direction in (-1, 1):
        frontier = [run.id]
        level = 0
        while frontier and not truncated:
            level += direction
            found: list[tuple[int, int, str, str | None]]
            if direction < 0:  # what the frontier reads, and its parents
                rows = session.execute(
                    select(RunRead.input_run_id, RunRead.run_id, RunRead.artifact)
                    .where(RunRead.run_id.in_(frontier))).all()
                parents = session.execute(select(Run.parent_id, Run.id).where(
                    Run.id.in_(frontier), Run.parent_id.is_not(None))).all()
                found = [(s, t, "reads", a) for s, t, a in rows] + \
                    [(p, c, "part of", None) for p, c in parents if p is not None]
                nxt = [s for s, _, _, _ in found]
            else:  # what reads the frontier, and its children
                rows = session.execute(
                    select(RunRead.input_run_id, RunRead.run_id, RunRead.artifact)
                    .where(RunRead.input_run_id.in_(frontier))).all()
                children = session.execute(select(Run.parent_id, Run.id).where(
                    Run.parent_id.in_(frontier))).all()
                found = [(s, t, "reads", a) for s, t, a in rows] + \
                    [(p, c, "part of", None) for p, c in children if p is not None]
                nxt = [t for _, t, _, _ in found]
            frontier = []
            for (source, target, relation, artifact), new in zip(found, nxt, strict=True):
                if new not in depth:
                    if len(depth) >= max_nodes:
                        truncated = True
                        continue
                    depth[new] = level
                    frontier.append(new)
                names = edges.setdefault((source, target, relation), set())
                if artifact is not None:
                    names.add(artifact)
    runs = session.execute(select(Run).where(Run.id.in_(depth))).scalars().all()
    kept = [Edge(s, t, rel, tuple(sorted(names))) for (s, t, rel), names in sorted(edges.items())
            if s in depth and t in depth]
    return Graph(sorted(runs, key=lambda r: (depth[r.id], r.id)), depth, kept, truncated)


__all__ = ["Dependant", "Edge", "Graph", "Read", "dependants", "graph", "reads",
           "record_reads"]
