"""Schemathesis against our OpenAPI schema: generated requests to every operation, as an
authenticated admin, and not one 5xx (bounded: a fixed number of examples each)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

from server.app import create_app
from server.settings import Settings
from server.store.db import session_scope
from server.store.users import ensure_admin

_DATA = Path(tempfile.mkdtemp(prefix="neuroreg-schemathesis-"))
_SETTINGS = Settings(data_dir=_DATA)
APP = create_app(_SETTINGS)
with session_scope(_SETTINGS.db_url) as _s:
    TOKEN = ensure_admin(_s) or ""

schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors(case) -> None:  # type: ignore[no-untyped-def]
    response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code < 500, (case.method, case.formatted_path, response.text[:500])
