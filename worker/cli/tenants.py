"""`sluice tenants create | list | issue-key | revoke-key | rotate-secret`.

The commands join `set-budget` on the same `tenants` group.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from worker.cli.costs import tenants_app

__all__ = ["tenants_app"]


@tenants_app.command("create")
def create(
    tenant: Annotated[str, typer.Argument(help="Tenant id: lowercase letters, digits, - or _.")],
    name: Annotated[str, typer.Option(help="Display name, such as the customer's system.")],
    callback_url: Annotated[str | None, typer.Option(
        help="Where results go when a job names no callback URL of its own.")] = None,
    allow_unsigned: Annotated[bool, typer.Option(
        help="Accept job requests with an API key but no webhook signature.")] = False,
    intake_per_minute: Annotated[int | None, typer.Option(
        min=1, help="Jobs the tenant may submit per minute; unset means no limit.")] = None,
    max_queued_jobs: Annotated[int | None, typer.Option(
        min=1, help="Waiting jobs at which intake responds 429; unset means no limit.")] = None,
) -> None:
    """Create a tenant and print its API key and webhook secret, which are shown only once."""
    from worker.db import session_scope
    from worker.tenants import create_tenant

    with session_scope() as session:
        issued = create_tenant(session, tenant, name, callback_url=callback_url,
                               allow_unsigned=allow_unsigned,
                               intake_per_minute=intake_per_minute,
                               max_queued_jobs=max_queued_jobs)
    typer.echo(f"tenant {issued.tenant_id} created")
    typer.echo(f"API key:        {issued.api_key}")
    typer.echo(f"webhook secret: {issued.webhook_secret}")
    typer.echo("Store both now: Sluice keeps only a hash of the key and shows neither again.")


@tenants_app.command("list")
def list_command() -> None:
    """List tenants with their settings and active key prefixes; no secret is printed."""
    from worker.db import session_scope
    from worker.tenants import list_tenants

    with session_scope() as session:
        tenants = list_tenants(session)
    table = Table(title="Tenants")
    for column in ("id", "name", "keys", "secrets", "unsigned", "per minute", "max queued",
                   "callback URL"):
        table.add_column(column)
    for t in tenants:
        table.add_row(t.id, t.name, " ".join(t.active_keys) or "-", str(t.active_secrets),
                      "yes" if t.allow_unsigned else "no", _limit(t.intake_per_minute),
                      _limit(t.max_queued_jobs), t.callback_url or "-")
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@tenants_app.command("issue-key")
def issue_key(
    tenant: Annotated[str, typer.Argument(help="Tenant id.")],
    name: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
) -> None:
    """Issue another API key, for example before revoking an old one; it is shown once."""
    from worker.db import session_scope
    from worker.tenants import issue_api_key

    with session_scope() as session:
        key = issue_api_key(session, tenant, name)
    typer.echo(f"API key: {key}")


@tenants_app.command("revoke-key")
def revoke_key(
    tenant: Annotated[str, typer.Argument(help="Tenant id.")],
    prefix: Annotated[str, typer.Argument(help="Key prefix as `sluice tenants list` shows it.")],
) -> None:
    """Revoke the tenant's API keys that start with PREFIX; requests with them get 401."""
    from worker.db import session_scope
    from worker.tenants import revoke_api_key

    with session_scope() as session:
        count = revoke_api_key(session, tenant, prefix)
    if count == 0:
        typer.echo(f"error: tenant {tenant} has no active key starting with {prefix}",
                   err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {count} key(s) of tenant {tenant}")


@tenants_app.command("rotate-secret")
def rotate(
    tenant: Annotated[str, typer.Argument(help="Tenant id.")],
    keep_old_for_s: Annotated[int, typer.Option(
        min=0, help="Seconds the current secrets stay valid, so callers can switch.")] = 86400,
) -> None:
    """Add a new webhook secret and print it once; the old ones expire after a grace period."""
    from worker.db import session_scope
    from worker.tenants import rotate_secret

    with session_scope() as session:
        secret = rotate_secret(session, tenant, keep_old_for_s)
    typer.echo(f"webhook secret: {secret}")
    typer.echo(f"the previous secret(s) stay valid for {keep_old_for_s} s")


def _limit(value: int | None) -> str:
    return "-" if value is None else str(value)
