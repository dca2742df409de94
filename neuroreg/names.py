"""Names the API takes, with one definition for the client that sends them and the server
that stores them (:mod:`core.store.artifacts` and :mod:`core.store.webhooks` import
these): a name the client sends can never change which run a request reaches (``../``,
``?``, ``#``), and the client refuses what the server would."""

from __future__ import annotations

import re
from typing import Literal, get_args

WebhookEvent = Literal["run.succeeded", "run.failed", "run.cancelled",
                       "study.succeeded", "study.failed", "study.cancelled"]
WEBHOOK_EVENTS: tuple[str, ...] = get_args(WebhookEvent)
"""What a webhook may subscribe to: a study (a run of kind ``study``) sends ``study.*``,
every other run (train, similarity, evaluate, external, and a study's children)
``run.*``."""

ARTIFACT_NAME_PATTERN = r"^[A-Za-z0-9](?:\.?[A-Za-z0-9_-])*\.?$"
"""An artifact name: a letter or digit, then letters, digits, ``.``, ``_`` and ``-`` with
no two dots in a row (so never ``..``); at most ARTIFACT_NAME_MAX characters. Written
without look-ahead, so the API schema states it and clients can generate from it."""
ARTIFACT_NAME_MAX = 255
_ARTIFACT_NAME = re.compile(ARTIFACT_NAME_PATTERN)


def artifact_name_problem(name: object) -> str | None:
    """Why the API would refuse ``name`` as an artifact name, or None when it takes it."""
    if (not isinstance(name, str) or len(name) > ARTIFACT_NAME_MAX
            or not _ARTIFACT_NAME.fullmatch(name)):  # fullmatch: "$" allows a last "\n"
        return (f"artifact name {name!r} must be 1–{ARTIFACT_NAME_MAX} letters, digits, "
                "'.', '_' or '-', starting with a letter or digit, without '..'")
    return None


_SEGMENT = ARTIFACT_NAME_PATTERN[1:-1]
ARTIFACT_PATH_PATTERN = rf"^{_SEGMENT}(?:/{_SEGMENT})*$"
"""An artifact path: names as above joined by ``/`` (a folder, as MLflow's artifacts have:
``model/MLmodel``); at most ARTIFACT_NAME_MAX characters in all."""
_ARTIFACT_PATH = re.compile(ARTIFACT_PATH_PATTERN)


def artifact_path_problem(path: object) -> str | None:
    """Why the store would refuse ``path`` as an artifact path, or None when it takes it."""
    if (not isinstance(path, str) or len(path) > ARTIFACT_NAME_MAX
            or not _ARTIFACT_PATH.fullmatch(path)):
        return (f"artifact path {path!r} must be names of letters, digits, '.', '_' or '-' "
                f"(each starting with a letter or digit, without '..') joined by '/', at "
                f"most {ARTIFACT_NAME_MAX} characters")
    return None


def check_artifact_name(name: object) -> str:
    """``name``, or ValueError saying why the API would refuse it."""
    problem = artifact_name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    assert isinstance(name, str)
    return name
