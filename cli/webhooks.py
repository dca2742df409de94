"""``neuroreg webhooks``: add, list, remove and ping your webhooks (through the client)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli._terminal import say
from cli.commands import client
from neuroreg.names import WEBHOOK_EVENTS as EVENTS
from neuroreg.settings import ClientSettings


def add_parser(sub: Any) -> None:
    """The ``webhooks`` command and its actions on the CLI's subparsers."""
    wh = sub.add_parser("webhooks", help="URLs POSTed a signed JSON event when your runs "
                        "or studies finish")
    actions = wh.add_subparsers(dest="action", required=True,
                                help="add, list, rm, test or deliveries")
    add = actions.add_parser("add", help="register a URL (prints its secret once)")
    add.add_argument("url", help="an http:// or https:// URL to a public address (private "
                     "ones only where the admin allows them)")
    add.add_argument("--event", action="append", choices=EVENTS, metavar="EVENT",
                     help=f"an event to send (repeatable; default all): {', '.join(EVENTS)}")
    add.add_argument("--secret", help="the HMAC key to sign with (default: a new random one)")
    add.set_defaults(func=cmd_add)
    ls = actions.add_parser("list", help="your webhooks and their latest delivery")
    ls.add_argument("--json", action="store_true", help="the server's JSON as is")
    ls.set_defaults(func=cmd_list)
    rm = actions.add_parser("rm", help="delete a webhook (its pending deliveries go too)")
    rm.add_argument("id", type=int, help="the webhook's id")
    rm.set_defaults(func=cmd_rm)
    test = actions.add_parser("test", help="queue a ping to a webhook")
    test.add_argument("id", type=int, help="the webhook's id")
    test.set_defaults(func=cmd_test)
    log = actions.add_parser("deliveries", help="a webhook's latest deliveries")
    log.add_argument("id", type=int, help="the webhook's id")
    log.add_argument("--limit", type=int, default=20, help="how many, newest first")
    log.set_defaults(func=cmd_deliveries)


def cmd_add(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        hook = nr.add_webhook(args.url, args.event, secret=args.secret)
    say(f"webhook {hook['id']}: {hook['url']} on {', '.join(hook['events'])}")
    print(f"secret (shown once; the receiver checks X-Neuroreg-Signature with it): "
          f"{hook['secret']}")
    return 0


def _last(d: dict[str, Any] | None) -> str:
    if d is None:
        return "no deliveries yet"
    why = f" ({d['last_error']})" if d["status"] != "delivered" and d["last_error"] else ""
    return f"last: {d['event']} {d['status']} after {d['attempts']} attempt(s){why}"


def cmd_list(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        hooks = nr.webhooks()
        last = {h["id"]: next(iter(nr.webhook_deliveries(h["id"], limit=1)), None)
                for h in hooks}
    if args.json:
        print(json.dumps(hooks, indent=2))
        return 0
    for h in hooks:
        say(f"{h['id']:>5}  {h['url']}  [{', '.join(h['events'])}]  {_last(last[h['id']])}")
    if not hooks:
        print("no webhooks; add one with `neuroreg webhooks add URL`")
    return 0


def cmd_rm(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        nr.delete_webhook(args.id)
    print(f"deleted webhook {args.id}")
    return 0


def cmd_test(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        ping = nr.test_webhook(args.id)
    print(f"queued ping {ping['id']} to webhook {args.id}; `neuroreg webhooks deliveries "
          f"{args.id}` shows how it went")
    return 0


def cmd_deliveries(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        rows = nr.webhook_deliveries(args.id, limit=args.limit)
    for d in rows:
        code = d["last_status_code"] or "-"
        say(f"{d['created_at'][:19]}  {d['event']:<16} {d['status']:<9} "
            f"attempts {d['attempts']}  last {code}"
            + (f"  {d['last_error']}" if d["last_error"] else "")
            + (f"  next {d['next_attempt_at'][:19]}" if d["next_attempt_at"] else ""))
    if not rows:
        print(f"no deliveries to webhook {args.id} yet")
    return 0
