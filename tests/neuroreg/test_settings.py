"""The client's settings (neuroreg.settings) read the environment as the service's
(core.settings) do: the same server URL, token, offline mode, spool and data directory
from the same variables, and a value neither can read is refused by both."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Settings
from neuroreg.settings import ClientSettings

ENVIRONMENTS = [
    {},
    {"XDG_DATA_HOME": "/srv/xdg"},
    {"XDG_DATA_HOME": ""},
    {"NEUROREG_DATA_DIR": "/lab/nr", "XDG_DATA_HOME": "/srv/xdg"},
    {"NEUROREG_DATA_DIR": "relative/dir"},
    {"NEUROREG_DATA_DIR": ""},
    {"NEUROREG_HOST": "0.0.0.0", "NEUROREG_PORT": "8010"},
    {"NEUROREG_PORT": " 8_001 "},
    {"NEUROREG_PORT": "9000.0"},
    {"neuroreg_port": "9001", "Neuroreg_Host": "lab"},  # any case, as pydantic-settings
    {"NEUROREG_API_URL": "https://nr.lab.org", "NEUROREG_PORT": "8010"},
    {"NEUROREG_API_URL": "", "NEUROREG_HOST": ""},
    {"NEUROREG_TOKEN": "nr_from_env"},
    {"NEUROREG_TOKEN": ""},
    {"NEUROREG_OFFLINE": "true"}, {"NEUROREG_OFFLINE": "YES"}, {"NEUROREG_OFFLINE": "0"},
    {"NEUROREG_OFFLINE": "auto"},
    {"NEUROREG_SPOOL_DIR": "/scratch/spool"},
    {"NEUROREG_SPOOL_DIR": ""},
    {"NEUROREG_DATA_DIR": "/lab/nr", "NEUROREG_SPOOL_DIR": "spool-here"},
]
REFUSED = [{"NEUROREG_PORT": "0"}, {"NEUROREG_PORT": "80x"}, {"NEUROREG_PORT": "8000.5"},
           {"NEUROREG_PORT": ""}, {"NEUROREG_OFFLINE": "Auto"}, {"NEUROREG_OFFLINE": ""},
           {"NEUROREG_OFFLINE": "maybe"}, {"NEUROREG_OFFLINE": " true "}]


def _resolved(s: Settings | ClientSettings) -> tuple[object, ...]:
    return (s.data_dir, s.url, s.offline, s.spool, s.token_file, s.api_token())


def _environ(monkeypatch: pytest.MonkeyPatch, home: Path, env: dict[str, str]) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("NEUROREG_") or name == "XDG_DATA_HOME":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("env", ENVIRONMENTS, ids=lambda e: ",".join(f"{k}={v}" for k, v in
                                                                     e.items()) or "none")
def test_the_client_resolves_what_the_service_does(
        env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    _environ(monkeypatch, tmp_path / "home", env)
    assert _resolved(ClientSettings.from_env()) == _resolved(Settings())


def test_without_a_token_both_read_the_admin_token_file(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _environ(monkeypatch, tmp_path, {"NEUROREG_DATA_DIR": str(tmp_path / "data")})
    assert ClientSettings.from_env().api_token() == Settings().api_token() == ""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "admin-token").write_text("nr_admin\n")
    assert ClientSettings.from_env().api_token() == Settings().api_token() == "nr_admin"
    monkeypatch.setenv("NEUROREG_TOKEN", "nr_mine")  # the variable comes first
    assert ClientSettings.from_env().api_token() == Settings().api_token() == "nr_mine"


@pytest.mark.parametrize("env", REFUSED, ids=lambda e: ",".join(f"{k}={v!r}" for k, v in
                                                                e.items()))
def test_a_value_the_service_refuses_the_client_refuses(
        env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _environ(monkeypatch, tmp_path, env)
    with pytest.raises(ValueError):
        Settings()
    with pytest.raises(ValueError, match=next(iter(env))):
        ClientSettings.from_env()
