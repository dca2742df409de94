"""``neuroreg projects``: projects and their members' roles through the client. Anyone
lists the projects they belong to and shows one; an admin makes and deletes projects; a
project's owners (and admins) set and remove its members; a run moves into a project its
mover may create runs in. The server refuses the rest (a 403, or a 404 for a project the
caller does not belong to), and the CLI prints its reason in one line."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli._terminal import say
from cli.commands import client
from neuroreg.settings import ClientSettings

ROLES = ("viewer", "editor", "owner")


def add_parser(sub: Any) -> None:
    """The ``projects`` command and its actions on the CLI's subparsers."""
    pr = sub.add_parser("projects", help="projects and roles: list, create, show, member, "
                        "remove, delete, move a run")
    act = pr.add_subparsers(dest="action", help="list (default), create, show, member, "
                            "remove, delete or move")
    pr.set_defaults(func=cmd_list, json=False)
    ls = act.add_parser("list", help="the projects you belong to (admins: every one), your "
                        "role in each and how many runs it holds")
    ls.add_argument("--json", action="store_true", help="the server's JSON as is")
    ls.set_defaults(func=cmd_list)
    new = act.add_parser("create", help="make a project (admins)")
    new.add_argument("name", help="letters, digits, '.', '_' or '-', starting with a letter "
                     "or digit")
    new.add_argument("--description", default="", help="what it is for")
    new.add_argument("--owner", action="append", metavar="USER", default=[],
                     help="a user (by name) who owns it from the start (repeatable: "
                     "--owner ada --owner bob; default: you)")
    new.set_defaults(func=cmd_create)
    show = act.add_parser("show", help="a project: its members and their roles")
    show.add_argument("project", help="the project's name (or id)")
    show.add_argument("--json", action="store_true", help="the server's JSON as is")
    show.set_defaults(func=cmd_show)
    member = act.add_parser("member", help="give a user a role in a project (its owners "
                            "and admins): viewer reads its runs, editor also creates runs "
                            "in it, owner also writes anyone's runs and sets its members")
    member.add_argument("project", help="the project's name (or id)")
    member.add_argument("user", help="the user's name")
    member.add_argument("role", choices=ROLES)
    member.set_defaults(func=cmd_member)
    rm = act.add_parser("remove", help="take a user out of a project (its owners and "
                        "admins); their runs in it stay")
    rm.add_argument("project", help="the project's name (or id)")
    rm.add_argument("user", help="the user's name")
    rm.set_defaults(func=cmd_remove)
    delete = act.add_parser("delete", help="delete an empty project (admins; never the "
                            "default one)")
    delete.add_argument("project", help="the project's name (or id)")
    delete.set_defaults(func=cmd_delete)
    move = act.add_parser("move", help="move a run, with every run it made, into a project")
    move.add_argument("run", type=int, help="the run's id")
    move.add_argument("project", help="the project's name (or id)")
    move.set_defaults(func=cmd_move)


def cmd_list(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        projects = nr.projects()
    if args.json:
        print(json.dumps(projects, indent=2))
        return 0
    print(f"{'id':>5}  {'name':<24} {'role':<7} {'runs':>6}")
    for p in projects:
        say(f"{p['id']:>5}  {p['name']:<24} {p['role']:<7} {p['runs']:>6}")
    return 0


def cmd_create(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        made = nr.create_project(args.name, description=args.description,
                                 owners=args.owner)
    owners = [m["user"] for m in made["members"] if m["role"] == "owner"]
    say(f"project {made['id']}: {made['name']}, owned by {', '.join(owners)}; `neuroreg "
        f"projects member {made['name']} USER viewer|editor|owner` lets others in")
    return 0


def cmd_show(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        project = nr.project(args.project)
    if args.json:
        print(json.dumps(project, indent=2))
        return 0
    say(f"project {project['id']}: {project['name']}"
        + (f" ({project['description']})" if project["description"] else ""))
    print(f"created {project['created_at'][:19]}, {project['runs']} run(s), your role: "
          f"{project['role']}")
    for m in project["members"]:
        say(f"{m['user_id']:>5}  {m['user']:<24} {m['role']}")
    if not project["members"]:
        print("no members (admins manage it)")
    return 0


def cmd_member(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        project = nr.set_member(args.project, args.user, args.role)
    role = next(m["role"] for m in project["members"] if m["user"] == args.user)
    say(f"{args.user} is now {'an' if role == 'editor' else 'a'} {role} of project "
        f"{project['name']}")
    return 0


def cmd_remove(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        nr.remove_member(args.project, args.user)
    say(f"{args.user} is no longer a member of project {args.project}: they read none of "
        "its runs from now on (their runs in it stay)")
    return 0


def cmd_delete(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        nr.delete_project(args.project)
    say(f"deleted project {args.project}")
    return 0


def cmd_move(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        run = nr.move_run(args.run, args.project)
    say(f"run {run['id']} ({run['name']}) is in project {run['project']} now, with every "
        "run it made")
    return 0
