"""Retention and lineage: the lab's artifact policies (admins make, delete and apply them;
every member reads them and their dry run), and each run's lineage graph."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import HTTPException, Path, Query, status
from fastapi.exceptions import RequestValidationError

from core import lineage, retention
from core.access import Access, readable_ids
from core.lineage import Dependant
from core.store.artifacts import remove_files
from core.store.audit import record
from core.store.models import MAX_ID, RetentionPolicy
from server.deps import CurrentAccess, CurrentUser, SessionDep, SettingsDep, run_or_404
from server.routes.team import ADMINS_ONLY, _admin
from server.schemas import (
    LineageEdge,
    LineageGraph,
    LineageRun,
    RetentionItem,
    RetentionPlan,
    RetentionPolicyCreate,
    RetentionPolicyPublic,
)
from server.strict import CONFLICT, api_router

router = api_router(prefix="/api/retention", tags=["retention"])
lineage_router = api_router(prefix="/api/runs", tags=["runs"])

PolicyId = Annotated[int, Path(ge=1, le=MAX_ID, description="a retention policy's id")]
SHOWN = 1000  # items a plan lists of each kind (its counts and bytes count them all)


def _spec(body: RetentionPolicyCreate) -> retention.Spec:
    return retention.Spec(name=body.name, rule=body.rule, pattern=body.pattern,
                          query=body.query, keep=body.keep, days=body.days)


def _invalid(exc: retention.PolicyError) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", exc.field), "msg": exc.message,
                                    "type": "value_error", "input": None}])


def _scoped(session: SessionDep, access: Access, done: retention.Plan) -> retention.Plan:
    """The part of a plan about runs the caller may read; a run they may not read that
    keeps an artifact is named by its id only."""
    if access.admin:
        return done
    ids = [i.run_id for i in done.delete + done.kept]
    ids += [d.run_id for i in done.kept for d in i.dependants]
    readable = readable_ids(session, access, ids)

    def hide(d: Dependant) -> Dependant:
        return d if d.run_id in readable else Dependant(
            run_id=d.run_id, kind="", name="(a run you may not read)", status="",
            artifact=d.artifact)

    return retention.Plan(
        delete=[i for i in done.delete if i.run_id in readable],
        kept=[dataclasses.replace(i, dependants=tuple(hide(d) for d in i.dependants))
              for i in done.kept if i.run_id in readable])


def _plan(done: retention.Plan, *, applied: bool) -> RetentionPlan:
    def items(xs: list[retention.Item]) -> list[RetentionItem]:
        return [RetentionItem.model_validate(retention.describe(i)) for i in xs[:SHOWN]]

    return RetentionPlan(applied=applied, delete=items(done.delete), kept=items(done.kept),
                         bytes_freed=done.bytes_freed,
                         truncated=len(done.delete) > SHOWN or len(done.kept) > SHOWN,
                         delete_count=len(done.delete), kept_count=len(done.kept))


@router.get("/policies")
def list_policies(session: SessionDep, access: CurrentAccess) -> list[RetentionPolicyPublic]:
    """The lab's retention policies, oldest first."""
    return [RetentionPolicyPublic.model_validate(p) for p in retention.policies(session)]


@router.post("/policies", status_code=status.HTTP_201_CREATED,
             responses={**CONFLICT, **ADMINS_ONLY})
def create_policy(body: RetentionPolicyCreate, session: SessionDep,
                  user: CurrentUser) -> RetentionPolicyPublic:
    """Add a policy (admins only). One that would delete an artifact another run reads
    now is a 409 naming that run; a query that does not parse a 422 naming ``query``."""
    _admin(user, "manage retention policies")
    try:
        policy = retention.create(session, user, _spec(body))
    except retention.PolicyConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except retention.PolicyError as exc:
        raise _invalid(exc) from None
    session.commit()
    return RetentionPolicyPublic.model_validate(policy)


@router.delete("/policies/{policy_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses=ADMINS_ONLY)
def delete_policy(policy_id: PolicyId, session: SessionDep, user: CurrentUser) -> None:
    """Remove a policy (admins only); what it deleted stays deleted."""
    _admin(user, "manage retention policies")
    policy = session.get(RetentionPolicy, policy_id)
    if policy is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no retention policy {policy_id}")
    record(session, user, "policy.deleted", "policy", policy.id, name=policy.name)
    session.delete(policy)
    session.commit()


@router.get("/plan")
def plan(session: SessionDep, access: CurrentAccess) -> RetentionPlan:
    """The dry run: what applying every policy now would delete and free, and what it
    keeps because another run reads it, among the runs you may read. Deletes nothing."""
    return _plan(_scoped(session, access, retention.plan(session, retention.policies(session))),
                 applied=False)


@router.post("/preview")
def preview(body: RetentionPolicyCreate, session: SessionDep, access: CurrentAccess
            ) -> RetentionPlan:
    """The dry run of a policy not stored yet (what ``POST /policies`` would make)."""
    spec = _spec(body)
    try:
        retention.check(spec, session.get_bind().dialect.name)
    except retention.PolicyError as exc:
        raise _invalid(exc) from None
    return _plan(_scoped(session, access, retention.plan(session, [spec])), applied=False)


@router.post("/apply", responses=ADMINS_ONLY)
def apply(session: SessionDep, user: CurrentUser, settings: SettingsDep) -> RetentionPlan:
    """Apply every policy now (admins only; the API also does every
    ``retention_interval_s``): delete what the dry run lists, keep what others read."""
    _admin(user, "apply retention policies")
    done, paths = retention.apply(session, user)
    session.commit()
    remove_files(settings.artifacts, paths)
    return _plan(done, applied=True)


@lineage_router.get("/{run_id}/lineage")
def run_lineage(run_id: Annotated[int, Path(ge=1, le=MAX_ID)], session: SessionDep,
                access: CurrentAccess,
                limit: Annotated[int, Query(ge=2, le=lineage.MAX_NODES)] = lineage.MAX_NODES,
                ) -> LineageGraph:
    """What the run was built from and what was built from it: the runs whose artifacts
    it reads (and its study), and the runs that read its artifacts (and its study's runs),
    transitively, up to ``limit`` runs."""
    run = run_or_404(session, run_id, access)
    g = lineage.graph(session, run, max_nodes=limit)
    readable = readable_ids(session, access, [r.id for r in g.runs])
    shown = [r for r in g.runs if r.id in readable]  # runs in projects not theirs: left out
    ids = {r.id for r in shown}
    return LineageGraph(
        run_id=run.id, truncated=g.truncated,
        runs=[LineageRun(id=r.id, name=r.name, kind=r.kind, status=r.status,
                         owner=r.owner.name, depth=g.depth[r.id]) for r in shown],
        edges=[LineageEdge(source=e.source, target=e.target, relation=e.relation,  # type: ignore[arg-type]
                           artifacts=list(e.artifacts)) for e in g.edges
               if e.source in ids and e.target in ids])
