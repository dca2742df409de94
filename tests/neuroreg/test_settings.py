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
        if name.upper().startswith("NEUROREG_") or name in ("XDG_DATA_HOME", "XDG_STATE_HOME"):
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


def test_a_client_naming_no_data_dir_reads_the_token_of_the_up_serving_its_url(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """After `neuroreg up --data-dir DIR` (which records DIR for its URL while it runs), a
    plain client of that URL reads DIR's admin token, not the default data dir's."""
    import os
    import subprocess
    import sys

    from neuroreg.settings import forget_server, record_server, servers_file

    _environ(monkeypatch, tmp_path / "home", {"NEUROREG_PORT": "8765"})
    default = tmp_path / "home" / ".local" / "share" / "neuroreg"
    default.mkdir(parents=True)
    (default / "admin-token").write_text("nr_default\n")
    served = tmp_path / "served"
    served.mkdir()
    (served / "admin-token").write_text("nr_served\n")
    state = servers_file()
    assert state == tmp_path / "home" / ".local" / "state" / "neuroreg" / "servers.json"
    both = lambda: (ClientSettings.from_env().api_token(), Settings().api_token())  # noqa: E731
    assert both() == ("nr_default", "nr_default")
    record_server("http://0.0.0.0:8765", served, os.getpid())  # up binds 0.0.0.0
    assert state.stat().st_mode & 0o777 == 0o600 and state.parent.stat().st_mode & 0o077 == 0
    assert str(served) in state.read_text() and "nr_served" not in state.read_text()
    assert both() == ("nr_served", "nr_served")
    monkeypatch.setenv("NEUROREG_API_URL", "http://localhost:8765")  # the same server
    assert both() == ("nr_served", "nr_served")
    monkeypatch.setenv("NEUROREG_PORT", "8766")
    monkeypatch.setenv("NEUROREG_API_URL", "http://127.0.0.1:8766")  # another one
    assert both() == ("nr_default", "nr_default")
    monkeypatch.setenv("NEUROREG_API_URL", "http://127.0.0.1:8765")
    monkeypatch.setenv("NEUROREG_DATA_DIR", str(default))  # a named data dir wins
    assert both() == ("nr_default", "nr_default")
    monkeypatch.delenv("NEUROREG_DATA_DIR")
    forget_server("http://127.0.0.1:8765", os.getpid() + 1)  # not its process: stays
    assert both() == ("nr_served", "nr_served")
    forget_server("http://127.0.0.1:8765", os.getpid())  # `up` ended
    assert both() == ("nr_default", "nr_default")
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    record_server("http://127.0.0.1:8765", served, int(ended.stdout))  # killed, not ended
    assert both() == ("nr_default", "nr_default")
    state.write_text("{not json")  # a damaged state file is no state
    assert both() == ("nr_default", "nr_default")


@pytest.mark.parametrize("env", REFUSED, ids=lambda e: ",".join(f"{k}={v!r}" for k, v in
                                                                e.items()))
def test_a_value_the_service_refuses_the_client_refuses(
        env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _environ(monkeypatch, tmp_path, env)
    with pytest.raises(ValueError):
        Settings()
    with pytest.raises(ValueError, match=next(iter(env))):
        ClientSettings.from_env()
