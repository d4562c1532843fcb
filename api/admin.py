"""`ots-admin`: the operator's door. Creator tokens, the storage quota, signing secrets.

    ots-admin tokens create NAME [--rate 600/minute]   print a new token, once
    ots-admin tokens list [--json]                      names, dates, limits; never tokens
    ots-admin tokens revoke NAME                        refused from the next request on
    ots-admin tokens rotate-signing-secret NAME         print its new notification secret
    ots-admin webhooks new-secret                       print a new WEBHOOK_SIGNING_SECRET
    ots-admin storage [--json]                          stored bytes and secrets vs the quota
    ots-admin storage recount                           set the totals from the table again

It reads the same environment as the service (DATABASE_URL and the rest) and, like the
service, brings the schema up to date first unless AUTO_MIGRATE=false. Exit status: 0 done,
1 refused (a taken name, an unknown token, an invalid value), 2 bad usage or configuration,
3 the database does not answer.
"""

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from api.domain import clock, creators, notifications, service
from api.domain.errors import InvalidInput, ServiceUnavailable
from api.settings import InvalidSettings, Settings, load_settings
from api.storage.database import UNAVAILABLE_ERRORS, Database, create_engine
from api.storage.migrations import migrate
from api.webhooks import new_signing_secret

REFUSED, BAD_USAGE, UNAVAILABLE = 1, 2, 3

Command = Callable[[Database, argparse.Namespace, Settings], Awaitable[None]]


class Refused(Exception):
    """The command cannot do what was asked; the message says why."""


def _when(value: datetime | None) -> str | None:
    return clock.format_timestamp(value) if value is not None else None


async def _create_token(db: Database, args: argparse.Namespace, settings: Settings) -> None:
    try:
        token = await creators.issue_token(db=db, name=args.name, rate_limit=args.rate)
    except creators.TokenNameTaken:
        raise Refused(
            f"a token named {args.name!r} exists already (names are not reused)"
        ) from None
    rate = args.rate or f"{settings.rate_limit_create_per_token} (RATE_LIMIT_CREATE_PER_TOKEN)"
    print(token)
    print(
        f"Token {args.name!r} created, limited to {rate}. It is shown this once and stored "
        "only as a hash: keep it now.",
        file=sys.stderr,
    )
    if settings.webhook_signing_secret is not None:
        secret = await _token_signing_secret(db, args.name, settings, rotate=False)
        print(
            f"Notifications of its secrets are signed with {secret} (shown this once; "
            "`tokens rotate-signing-secret` makes a new one).",
            file=sys.stderr,
        )


async def _token_signing_secret(
    db: Database, name: str, settings: Settings, *, rotate: bool
) -> str:
    master = settings.webhook_signing_secret
    if master is None:
        raise Refused("set WEBHOOK_SIGNING_SECRET first: token signing secrets derive from it")
    try:
        token_id, generation = await creators.signing_identity(db=db, name=name, rotate=rotate)
    except creators.TokenNotFound:
        raise Refused(f"no token is named {name!r}") from None
    return notifications.token_signing_secret(master.get_secret_value(), token_id, generation)


async def _rotate_signing_secret(
    db: Database, args: argparse.Namespace, settings: Settings
) -> None:
    print(await _token_signing_secret(db, args.name, settings, rotate=True))
    print(
        f"Notifications of {args.name!r}'s secrets are signed with this secret from now on, "
        "retries of earlier ones included.",
        file=sys.stderr,
    )


async def _list_tokens(db: Database, args: argparse.Namespace, settings: Settings) -> None:
    records = [
        {
            "name": record.name,
            "rate_limit": record.rate_limit,
            "created_at": _when(record.created_at),
            "last_used_at": _when(record.last_used_at),
            "revoked_at": _when(record.revoked_at),
        }
        for record in await creators.list_tokens(db=db)
    ]
    if args.json:
        print(json.dumps(records, indent=2))
        return
    columns = ("name", "rate_limit", "created_at", "last_used_at", "revoked_at")
    rows = [[str(record[column] or "-") for column in columns] for record in records]
    table = [list(columns), *rows]
    widths = [max(len(line[index]) for line in table) for index in range(len(columns))]
    for line in table:
        print("  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)))


async def _revoke_token(db: Database, args: argparse.Namespace, settings: Settings) -> None:
    try:
        record = await creators.revoke_token(db=db, name=args.name)
    except creators.TokenNotFound:
        raise Refused(f"no token is named {args.name!r}") from None
    print(f"Token {record.name!r} revoked at {_when(record.revoked_at)}.")


def _usage_report(stored_bytes: int, stored_secrets: int, settings: Settings) -> dict[str, Any]:
    return {
        "stored_bytes": stored_bytes,
        "max_stored_bytes": settings.max_stored_bytes,
        "stored_secrets": stored_secrets,
        "max_live_secrets": settings.max_live_secrets,
    }


async def _storage(db: Database, args: argparse.Namespace, settings: Settings) -> None:
    if args.action == "recount":
        totals = await service.recount_storage(db=db)
    else:
        totals = await service.storage_usage(db=db)
    report = _usage_report(*totals, settings)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for what, used, limit in (
        ("bytes", report["stored_bytes"], report["max_stored_bytes"]),
        ("secrets", report["stored_secrets"], report["max_live_secrets"]),
    ):
        print(f"{what:8} {used:>14,} of {limit:>14,}  ({used / limit:6.1%})")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ots-admin", description="Manage creator tokens and see the storage quota."
    )
    groups = parser.add_subparsers(dest="group", required=True)
    tokens = groups.add_parser("tokens", help="creator tokens (CREATE_AUTH=token)")
    actions = tokens.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="issue a token and print it once")
    create.add_argument("name", help="a label for the token, shown in lists and metrics")
    create.add_argument("--rate", help="its create limit, e.g. 600/minute")
    create.set_defaults(command=_create_token)
    listing = actions.add_parser("list", help="every token, revoked ones included")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(command=_list_tokens)
    revoke = actions.add_parser("revoke", help="refuse the token from the next request on")
    revoke.add_argument("name")
    revoke.set_defaults(command=_revoke_token)
    rotate = actions.add_parser(
        "rotate-signing-secret", help="give the token's notifications a new signing secret"
    )
    rotate.add_argument("name")
    rotate.set_defaults(command=_rotate_signing_secret)
    webhooks = groups.add_parser("webhooks", help="notifications to senders")
    webhook_actions = webhooks.add_subparsers(dest="action", required=True)
    webhook_actions.add_parser("new-secret", help="print a new WEBHOOK_SIGNING_SECRET")
    storage = groups.add_parser("storage", help="stored bytes and secrets against the quota")
    storage.add_argument("action", nargs="?", choices=["show", "recount"], default="show")
    storage.add_argument("--json", action="store_true", help="print JSON")
    storage.set_defaults(command=_storage)
    return parser


async def _run(command: Command, args: argparse.Namespace, settings: Settings) -> None:
    if settings.auto_migrate:
        await migrate(settings)
    # Not bound like a request: a recount of a large store may rightly take longer.
    db = Database(create_engine(settings, bound_statements=False))
    try:
        await command(db, args, settings)
    finally:
        await db.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one admin command; return its exit status."""
    args = _parser().parse_args(argv)
    if args.group == "webhooks":
        # Needs neither the settings nor the database: a secret for the operator to set.
        print(new_signing_secret())
        return 0
    try:
        settings = load_settings()
        asyncio.run(_run(args.command, args, settings))
    except InvalidSettings as error:
        print(f"ots-admin: {error}", file=sys.stderr)
        return BAD_USAGE
    except (Refused, InvalidInput) as error:
        print(f"ots-admin: {error}", file=sys.stderr)
        return REFUSED
    except (ServiceUnavailable, *UNAVAILABLE_ERRORS) as error:
        # The type is enough: a driver's message may quote the URL and its password.
        print(f"ots-admin: the database does not answer ({type(error).__name__})", file=sys.stderr)
        return UNAVAILABLE
    return 0


if __name__ == "__main__":
    sys.exit(main())
