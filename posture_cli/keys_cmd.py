"""``posture keys``: the server's API keys, kept hashed in the prediction store's database."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from posture_cli.console import console, error_console, load_settings, print_json, user_errors
from posture_cli.db_cmd import DatabaseUrl

keys_app = typer.Typer(help="API keys of the server: create (shown once), list, revoke.", no_args_is_help=True)


def _store_url(database_url: str | None) -> str:
    """The primary database (keys are written there), its schema brought up to date."""
    from serving.store.db import ensure_schema

    settings = load_settings(database_url=database_url)
    ensure_schema(settings.database_url, settings.auto_migrate)
    return settings.database_url


@keys_app.command("create")
@user_errors
def create(
    name: Annotated[str, typer.Argument(help="A name for the key's holder, e.g. the app or fleet.")],
    scope: Annotated[
        Optional[list[str]],
        typer.Option(
            "--scope",
            help="What the key may do beyond streaming and predicting (repeatable): record (recorded sessions).",
        ),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a key and print it once: only its SHA-256 digest is stored."""
    from serving.store.api_keys import create_key

    key = create_key(_store_url(database_url), name, scope or ())
    scopes = f" with scope(s) {', '.join(sorted(set(scope)))}" if scope else ""
    error_console.print(f"created API key {name!r}{scopes}; it is shown only now, store it safely:", highlight=False)
    sys.stdout.write(key + "\n")  # stdout holds only the key: KEY=$(posture keys create app) works


@keys_app.command("list")
@user_errors
def list_(
    database_url: DatabaseUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Key names, when they were created and revoked (the keys themselves are not stored)."""
    from rich.table import Table

    from serving.store.api_keys import list_keys

    keys = list_keys(_store_url(database_url))
    if as_json:
        print_json(
            [
                {
                    "name": k.name,
                    "created_at": k.created_at.isoformat(),
                    "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
                    "scopes": list(k.scopes),
                }
                for k in keys
            ]
        )
        return
    table = Table(title="API keys")
    for column in ("name", "created (UTC)", "status", "scopes"):
        table.add_column(column)
    for k in keys:
        status = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        table.add_row(k.name, f"{k.created_at:%Y-%m-%d %H:%M:%S}", status, " ".join(k.scopes) or "–")
    console.print(table if keys else "no API keys yet: posture keys create NAME")


@keys_app.command("revoke")
@user_errors
def revoke(
    name: Annotated[str, typer.Argument(help="The key's name (see `posture keys list`).")],
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke a key; servers refuse it within POSTURE_API_KEY_CACHE_S (5 s by default)."""
    from serving.store.api_keys import revoke_key

    settings = load_settings(database_url=database_url)
    revoke_key(_store_url(database_url), name)
    console.print(f"revoked API key {name!r}; servers refuse it within {settings.api_key_cache_s:g} s", highlight=False)
