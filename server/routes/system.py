"""Health (the one unauthenticated route), the current user, and the names of the
artifacts runs store."""

from __future__ import annotations

from sqlalchemy import text

from core.kinds import KINDS
from ml import artifacts
from server.deps import CurrentUser, SessionDep
from server.schemas import KindPublic, Labels, UserPublic
from server.strict import api_router

router = api_router(prefix="/api", tags=["system"])


@router.get("/health")
def health(session: SessionDep) -> dict[str, str]:
    session.execute(text("SELECT 1"))
    return {"status": "ok"}


@router.get("/me")
def me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)


@router.get("/artifact-names")
def artifact_names(_: CurrentUser) -> dict[str, str]:
    """The artifact each role is stored under (``model``: a train run's network,
    ``figures``: a similarity run's Fig. 1 panels, …), from :mod:`ml.artifacts`: pages ask
    here instead of spelling names."""
    return artifacts.public()


@router.get("/labels")
def labels(_: CurrentUser) -> Labels:
    """How the figures write the field's names: ``norms`` (``linf`` → ``L∞``, from
    :data:`ml.evaluate.attacks.NORM_LABELS`) and ``corruptions`` (``gaussian_noise`` →
    ``Gaussian noise``, from :data:`ml.evaluate.corruptions.CORRUPTIONS`), so no page
    spells them."""
    from ml.evaluate.attacks import NORM_LABELS
    from ml.evaluate.corruptions import CORRUPTIONS

    return Labels(norms=dict(NORM_LABELS),
                  corruptions={name: c.label for name, c in CORRUPTIONS.items()})


@router.get("/kinds")
def kinds(_: CurrentUser) -> list[KindPublic]:
    """The run kinds (:data:`core.kinds.KINDS`): each one's name, the schema of its
    ``config`` in ``/openapi.json``, what it is, the queue its task runs on (None: a
    script outside the service logs into it), the fields that name another run and its
    kind (``reads``), and its ``presets`` (``cpu``: minutes on a CPU; ``paper``: the
    paper's setting). The submit form is built from these."""
    return [KindPublic(name=k.name, config_schema=k.config_type.__name__, summary=k.summary,
                       queue=k.queue, reads=k.reads, presets=k.presets)
            for k in KINDS.values()]
