"""The rest of the surface (issue 33, item 9): what a member can put in a query, a run name,
a config key or a log line, and what a browser may do with our pages."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

# Terms outside what a number, an id or a date can be: each a 422 that names the term
OUT_OF_RANGE = [
    ("metrics.acc > 1e999", "1e999"),
    ("metrics.acc.max < -1e999", "-1e999"),
    ("config.params.alpha = 1e400", "1e400"),
    ("config.params.alpha > 123456789" + "0" * 400, "1234567890"),
    ("id > 99999999999999999999999", "99999999999999999999999"),
    ("id = 9223372036854775807", "9223372036854775807"),
    ("id = -99999999999999999999999", "-99999999999999999999999"),
    ("parent = 2147483648", "2147483648"),
    ("id < 1.5", "1.5"),
    ('created > "99999-01-01"', "99999-01-01"),
    ('created > "-0001-01-01"', "-0001-01-01"),
    ('started > "0001-01-01T00:00+05:00"', "0001-01-01T00:00+05:00"),
    ('finished < "9999-12-31T23:59-05:00"', "9999-12-31T23:59-05:00"),
    ("metrics.acc > nan", "nan"),
    ('created > "NaN"', "NaN"),
    ('created ~ "1988-01-01"', "created takes"),  # lower(timestamp): a 500 on PostgreSQL
]


def external(api: TestClient, name: str, tags: tuple[str, ...] = (),
             **params: object) -> dict:
    """A run a script logs into, named ``name``, its ``params`` as its config."""
    res = api.post("/api/runs", json={"kind": "external", "name": name,
                                      "config": {"params": params}})
    assert res.status_code == 201, res.text
    if tags:
        assert api.patch(f"/api/runs/{res.json()['id']}",
                         json={"tags": list(tags)}).status_code == 200
    return res.json()


@pytest.mark.parametrize(("q", "term"), OUT_OF_RANGE)
def test_an_out_of_range_term_in_a_query_is_a_422_naming_it(api: TestClient, q: str,
                                                             term: str) -> None:
    external(api, "r", alpha=3)
    for path in ("/api/runs", "/api/runs.csv"):
        res = api.get(path, params={"q": q})
        assert res.status_code == 422, (path, res.text)
        assert res.json()["detail"][0]["loc"] == ["query", "q"]
        assert term in res.json()["detail"][0]["msg"], res.text
    res = api.get("/api/run-groups", params={"q": q, "by": "kind"})
    assert res.status_code == 422, res.text


def test_the_edges_of_each_range_still_answer(api: TestClient) -> None:
    """The largest finite number, the first and last instant, the largest id: in range."""
    run = external(api, "r", alpha=3)
    for q in ("metrics.acc < 1.7e308", "config.params.alpha > -1.7e308", "id <= 2147483647",
              "id > -2147483647", 'created > "0001-01-01"', 'created < "9999-12-31T23:59"',
              "config.params.alpha > 1e-999"):
        res = api.get("/api/runs", params={"q": q})
        assert res.status_code == 200, (q, res.text)
    assert [r["id"] for r in api.get("/api/runs", params={
        "q": "config.params.alpha > 1e-999"}).json()["items"]] == [run["id"]]


def test_contains_matches_percent_and_underscore_literally(api: TestClient) -> None:
    for name in ("100% done", "a_b", "axb", "plain"):  # a tag holds no % or space
        external(api, name, (name.replace("% ", "pct-"),), note=name)

    def matching(q: str) -> list[str]:
        res = api.get("/api/runs", params={"q": q, "order": "oldest"})
        assert res.status_code == 200, res.text
        return [r["name"] for r in res.json()["items"]]

    for field in ("name", "config.params.note"):
        assert matching(f'{field} ~ "%"') == ["100% done"], field
        assert matching(f'{field} ~ "0%"') == ["100% done"], field
    for field in ("name", "tag", "config.params.note"):
        assert matching(f'{field} ~ "_"') == ["a_b"], field
        assert matching(f'{field} ~ "a_b"') == ["a_b"], field
        assert matching(f'{field} ~ "/"') == [], field  # the escape character itself
    assert matching('tag ~ "%"') == [] and matching('owner ~ "%"') == []
    assert matching('owner ~ "_"') == []  # the admin's name has no underscore


FORMULAS = ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx",
            "'=already quoted"]


def test_csv_export_quotes_formulas_in_text_and_keeps_numbers(api: TestClient,
                                                              member: Callable) -> None:
    import csv
    import io

    eve = member("eve")
    for i, text in enumerate(FORMULAS):
        external(eve, text, note=text, score=-0.5 - i, neg="-3")
    res = api.get("/api/runs.csv", params={
        "columns": "config.params.note,config.params.score,config.params.neg"})
    assert res.status_code == 200, res.text
    rows = list(csv.DictReader(io.StringIO(res.text, newline="")))
    assert [r["name"] for r in rows] == ["'" + t for t in reversed(FORMULAS)]
    assert [r["config.params.note"] for r in rows] == ["'" + t for t in reversed(FORMULAS)]
    assert [float(r["config.params.score"]) for r in rows] == [-0.5 - i for i in
                                                               reversed(range(len(FORMULAS)))]
    assert {r["config.params.neg"] for r in rows} == {"-3"}  # text that is just a number


def test_the_client_reads_csv_text_back_as_stored(api: TestClient, backend) -> None:
    from neuroreg.client import Client
    from tests.livesrv import live_server

    for text in FORMULAS:
        external(api, text, score=-1.5)
    token = api.headers["Authorization"].split()[1]
    with live_server(backend) as url, Client(url, token) as nr:
        frame = nr.runs_frame(columns=["config.params.score"], sort="config.params.score")
    assert sorted(frame["name"]) == sorted(FORMULAS)
    assert frame["config.params.score"].tolist() == [-1.5] * len(FORMULAS)


def test_every_response_forbids_framing_sniffing_and_foreign_scripts(api: TestClient,
                                                                     anon: TestClient) -> None:
    run = external(api, "r")
    assert api.put(f"/api/runs/{run['id']}/artifacts/page.html", content=b"<p>hi</p>",
                   headers={"Content-Type": "text/html"}).status_code in (200, 201)
    answers = [anon.get("/"), anon.get("/compare"), anon.get("/static/app.css"),
               anon.get("/api/runs"), api.get("/api/runs"), api.get("/api/nothing-here"),
               anon.post("/api/runs", json={}), api.get("/openapi.json")]
    for res in answers:
        csp = res.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, res.url
        assert res.headers.get("x-frame-options") == "DENY", res.url
        assert res.headers.get("x-content-type-options") == "nosniff", res.url
        assert res.headers.get("referrer-policy") == "same-origin", res.url
        assert res.headers.get_list("content-security-policy") == [csp]  # one of each
    artifact = api.get(f"/api/runs/{run['id']}/artifacts/page.html")
    assert artifact.status_code == 200
    assert artifact.headers.get_list("content-security-policy") == ["sandbox"]  # its own
    assert artifact.headers.get("x-frame-options") == "DENY"


class _Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


# a title, a clipboard write (OSC 52), a hyperlink, colour, CR over a line, 8-bit CSI,
# a bidi override
HOSTILE = ("\x1b]0;pwned\x07 \x1b]52;c;ZWNobyBwd25lZA==\x07 \x1b]8;;http://x\x1b\\link"
           "\x1b]8;;\x1b\\ \x1b[31mred\x1b[0m\rover \x9b2J \u202eevil")
CONTROLS = ["\x1b", "\x07", "\r", "\x9b", "\u202e"]


def test_the_cli_prints_members_escape_sequences_as_text_on_a_terminal(
        settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from cli import build_parser
    from cli.commands import cmd_runs
    from cli.logs import cmd_logs
    from core.store.db import session_scope
    from core.store.users import ensure_admin
    from neuroreg.client import Client
    from tests.livesrv import live_server

    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            admin = ensure_admin(s)
        with Client(url, admin) as nr:
            eve = nr._call("POST", "/api/users", json={"name": "eve"})["token"]
        with Client(url, eve) as mallory:
            run = mallory.create_external(HOSTILE)
            for seq, stream in enumerate(("stdout", "stderr")):
                mallory._call("POST", f"/api/runs/{run['id']}/logs", json={"lines": [
                    {"seq": seq, "line": f"{HOSTILE}\tafter tab", "stream": stream}]})
        cli = settings.model_copy(update={"api_url": url, "token": admin})
        commands = [(cmd_logs, ["logs", str(run["id"])]), (cmd_runs, ["runs"])]
        for cmd, argv in commands:  # piped: the bytes as they are
            assert cmd(build_parser().parse_args(argv), cli) == 0
            assert HOSTILE in capsys.readouterr().out
        with Client(url, eve) as mallory:
            mallory.finish(run["id"])
        commands.append((cmd_logs, ["logs", str(run["id"]), "--follow", "--streams"]))
        for cmd, argv in commands:  # on a terminal: every control character as its escape
            out, err = _Terminal(), _Terminal()
            monkeypatch.setattr("sys.stdout", out)
            monkeypatch.setattr("sys.stderr", err)
            assert cmd(build_parser().parse_args(argv), cli) == 0
            monkeypatch.undo()
            text = out.getvalue() + err.getvalue()
            assert not [c for c in CONTROLS if c in text], (argv, text)
            assert "\\x1b]52;c;" in text and "\\u202eevil" in text, text
            if cmd is cmd_logs:
                assert "\tafter tab\n" in out.getvalue() and "\tafter tab\n" in err.getvalue()


MARKUP = '<a href="https://example.com">x</a> <b>bold</b>'


@pytest.mark.browser
def test_compare_shows_markup_in_names_as_text_and_draws_odd_config_keys(
        browser, settings) -> None:  # type: ignore[no-untyped-def]
    """Plotly reads HTML in trace names: a run name is shown as written, never a link;
    a config key with a space, a quote or a dot leaves Compare drawing the rest; the
    pages' CSP refuses nothing the pages need."""
    from core.store.db import session_scope
    from core.store.users import ensure_admin
    from neuroreg.client import Client
    from tests.browser.conftest import OUTPUT
    from tests.livesrv import live_server

    with live_server(settings) as url:
        with session_scope(settings.db_url) as s:
            token = ensure_admin(s)
        with Client(url, token) as nr:
            ids = []
            for i, name in enumerate((MARKUP, "plain")):
                run = nr.create_external(name, params={
                    "my key": i, "lr": 0.1 * (i + 1), "o'q\"d": f"<i>{i}</i>", "é.x": i})
                nr._call("POST", f"/api/runs/{run['id']}/metrics", json={"points": [
                    {"key": "loss", "step": k, "value": 1 / (k + 1 + i)} for k in range(5)]})
                ids.append(run["id"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.add_init_script("window.refused = []; document.addEventListener("
                             "'securitypolicyviolation', (e) => window.refused.push("
                             "e.violatedDirective + ' ' + e.blockedURI));")
        page.goto(f"{url}/compare?runs={ids[0]},{ids[1]}&key=loss#token={token}")
        page.wait_for_function("() => ['compare-chart', 'compare-parcoords', 'compare-scatter']"
                               ".every((id) => (document.getElementById(id).data || []).length)")
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "compare-markup.png"), full_page=True)
        legend = page.locator("#compare-chart .legendtext").all_text_contents()
        assert legend == [f"#{ids[0]} {MARKUP}", f"#{ids[1]} plain"]
        assert page.locator(".js-plotly-plot svg a").count() == 0  # no link in any figure
        assert page.locator("#compare-error").inner_text() == ""
        assert "params.my key" in page.locator("#diff-table").inner_text()
        assert page.evaluate("window.refused") == []
