"""``neuroreg users``, ``neuroreg tokens`` and ``neuroreg audit``: the team through the
client. Anyone lists users and manages their own tokens; an admin adds, disables,
re-enables and re-roles users, lists and revokes anyone's tokens and reads the audit
trail, of which a project's owner reads the events of the projects they own (the server
refuses the rest with a 403)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli._terminal import say
from cli.commands import UsageError, client
from neuroreg.client import Client
from neuroreg.settings import ClientSettings


def add_parser(sub: Any) -> None:
    """The ``users``, ``tokens`` and ``audit`` commands on the CLI's subparsers."""
    users = sub.add_parser("users", help="the team: list, add, disable, enable, set a role")
    act = users.add_subparsers(dest="action", help="list (default), add, disable, enable "
                               "or role")
    users.set_defaults(func=cmd_users, json=False)
    ls = act.add_parser("list", help="every user, their role and whether they are enabled")
    ls.add_argument("--json", action="store_true", help="the server's JSON as is")
    ls.set_defaults(func=cmd_users)
    add = act.add_parser("add", help="add a user (admins); prints their first token once")
    add.add_argument("name", help="letters, digits, '.', '_' or '-'")
    add.add_argument("--admin", action="store_true", help="an admin instead of a member")
    add.set_defaults(func=cmd_add)
    for name, disabled, text in (
            ("disable", True, "refuse every token of a user at once and cancel their queued "
             "runs (admins); running runs finish"),
            ("enable", False, "let a disabled user's tokens in again (admins)")):
        p = act.add_parser(name, help=text)
        p.add_argument("user", help="the user's name (or id)")
        p.set_defaults(func=cmd_disable, disabled=disabled)
    role = act.add_parser("role", help="make a user an admin or a member (admins)")
    role.add_argument("user", help="the user's name (or id)")
    role.add_argument("role", choices=["admin", "member"])
    role.set_defaults(func=cmd_role)

    tokens = sub.add_parser("tokens", help="API tokens: list, create, revoke")
    act = tokens.add_subparsers(dest="action", help="list (default), create or revoke")
    tokens.set_defaults(func=cmd_tokens, user=None, json=False)
    ls = act.add_parser("list", help="your tokens, or a user's (admins); never the secrets")
    ls.add_argument("--user", help="whose (default: yours), by name or id")
    ls.add_argument("--json", action="store_true", help="the server's JSON as is")
    ls.set_defaults(func=cmd_tokens)
    new = act.add_parser("create", help="a new token of yours (printed once)")
    new.add_argument("name", help="what it is for, e.g. laptop")
    new.add_argument("--worker", action="store_true",
                     help="a worker token (admins): it acts only as a worker over the API "
                     "(NEUROREG_WORKER_TOKEN), not as you")
    new.set_defaults(func=cmd_create_token)
    rm = act.add_parser("revoke", help="revoke a token by id (admins: anyone's)")
    rm.add_argument("id", type=int, help="the token's id (`neuroreg tokens list` shows it)")
    rm.set_defaults(func=cmd_revoke)

    log = sub.add_parser("audit", help="who did what to whom, newest first: users, roles, "
                         "tokens, projects, runs (admins: every event; a project's owners: "
                         "the events of the projects they own)")
    log.add_argument("--limit", type=int, default=50, help="how many (default 50, at most 500)")
    log.add_argument("--before", type=int, help="only events older than this event id")
    log.add_argument("--project", type=int, metavar="ID", help="only the events of this "
                     "project (its id: `neuroreg projects` lists them)")
    log.add_argument("--json", action="store_true", help="the server's JSON as is")
    log.set_defaults(func=cmd_audit)


def _user(nr: Client, ref: str) -> dict[str, Any]:
    """The user named ``ref``, else the user with that id."""
    users = nr.users()
    for u in users:
        if u["name"] == ref:
            return u
    for u in users:
        if ref.isdigit() and u["id"] == int(ref):
            return u
    raise UsageError(f"no user named {ref!r}; `neuroreg users` lists them")


def _state(u: dict[str, Any]) -> str:
    return f"disabled {u['disabled_at'][:19]}" if u["disabled_at"] else "enabled"


def cmd_users(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        users = nr.users()
    if args.json:
        print(json.dumps(users, indent=2))
        return 0
    for u in users:
        print(f"{u['id']:>5}  {u['name']:<24} {u['role']:<7} {_state(u)}")
    return 0


def cmd_add(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        made = nr.add_user(args.name, role="admin" if args.admin else "member")
    print(f"user {made['id']}: {made['name']} ({made['role']})")
    print(f"their first token (shown once; they use it as NEUROREG_TOKEN): {made['token']}")
    return 0


def cmd_disable(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        me = nr.me()
        user = nr.update_user(_user(nr, args.user)["id"], disabled=args.disabled)
    if args.disabled:
        print(f"disabled {user['name']}: their tokens are refused from now on and their "
              "queued runs are cancelled"
              + (" (that is you: this token too)" if user["id"] == me["id"] else ""))
    else:
        print(f"enabled {user['name']}: their tokens that are not revoked work again")
    return 0


def cmd_role(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        user = nr.update_user(_user(nr, args.user)["id"], role=args.role)
    print(f"{user['name']} is now {'an' if user['role'] == 'admin' else 'a'} {user['role']}")
    return 0


def cmd_tokens(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        whose = _user(nr, args.user) if args.user else None
        tokens = nr.tokens(whose["id"] if whose else None)
    if args.json:
        print(json.dumps(tokens, indent=2))
        return 0
    for t in tokens:
        state = f"revoked {t['revoked_at'][:19]}" if t["revoked_at"] else "active"
        say(f"{t['id']:>5}  {t['name']:<24} {t['scope']:<7} created "
            f"{t['created_at'][:19]}  {state}")
    if not tokens:
        print("no tokens")
    return 0


def cmd_create_token(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        made = nr.create_token(args.name, scope="worker" if args.worker else "member")
    if made["scope"] != "worker":
        say(f"token {made['id']} ({made['name']}), shown once: {made['token']}")
        return 0
    say(f"worker token {made['id']} ({made['name']}), shown once: {made['token']}")
    say("a worker on another machine needs no database, only the broker "
        "(NEUROREG_BROKER_URL) and:")
    say(f"  NEUROREG_API_URL={settings.url} NEUROREG_WORKER_TOKEN={made['token']} "
        "neuroreg worker")
    return 0


def cmd_revoke(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        nr.revoke_token(args.id)
    print(f"revoked token {args.id}: it is refused from now on")
    return 0


def _describe(e: dict[str, Any]) -> str:
    """One event in words: ``admin  user.disabled  user 3 (eve)``; a change in a project
    names it: ``run 7 (sweep) in project 2``, ``project 2 (alpha): ada``."""
    d = e["detail"]
    target = f"{e['target_kind']} {e['target_id']}"
    hidden = ["name", "user", "user_id"]
    if e["target_kind"] == "token":
        target += f" ({d.get('name')!s} of {d.get('user')!s})"
    elif e["target_kind"] == "project" and "user" in d:  # a member set or removed
        target += f" ({d.get('project')!s}): {d['user']}"
        hidden.append("project")
    elif "name" in d:
        target += f" ({d['name']})"
    if e.get("project_id") is not None and e["target_kind"] != "project":
        target += f" in project {e['project_id']}"
    extra = {k: v for k, v in d.items() if k not in hidden}
    return f"{target}" + (f"  {json.dumps(extra)}" if extra else "")


def cmd_audit(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        events = nr.audit(limit=args.limit, before=args.before, project=args.project)
    if args.json:
        print(json.dumps(events, indent=2))
        return 0
    for e in events:
        say(f"{e['id']:>6}  {e['at'][:19]}  {e['actor_name'] or '(service)':<16} "
            f"{e['action']:<22} {_describe(e)}")
    if not events:
        print("no events")
    elif len(events) == args.limit:
        more = f" --project {args.project}" if args.project is not None else ""
        print(f"(older: neuroreg audit{more} --before {events[-1]['id']})")
    return 0
