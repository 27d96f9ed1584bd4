"""`order-service`: run the service, or talk to a running one (send, tail, show)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from contracts.headers import AUTHORIZATION, BEARER_SCHEME
from service.entrypoints import dead_letter_cli, families, tokens
from service.entrypoints.configured import DEV_MASTER_KEY, service_settings, tool_settings
from service.entrypoints.logs import configure_logging
from service.settings import Settings

cli = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
cli.add_typer(dead_letter_cli.app, name="dead-letters")

DEV_STACK_DIR = Path(".devstack")
DEV_POSTGRES_PORT = 54329
DEV_KAFKA_PORT = 9092
DEV_SESSION_TIMEOUT_MS = 2000
# Longer than a service takes to see a changed key file (a second) plus a batch's transaction.
ROTATION_SETTLE_SECONDS = 5.0


async def _serve(settings: Settings) -> None:
    from service.entrypoints.app import create_app

    app = create_app(settings)
    await app.run(
        log_level=logging.getLevelName(settings.log_level.upper()),
        # log_config None: uvicorn's lines go through the root handler, in LOG_FORMAT.
        run_extra_options={
            "host": settings.health_host,
            "port": settings.health_port,
            "log_config": None,
        },
    )


@cli.command()
def serve(
    relay: Annotated[
        bool,
        typer.Option(
            help="run the outbox relay as a child process (RELAY_IN_PROCESS); --no-relay when"
            " `order-service relay` runs as a deployment of its own"
        ),
    ] = True,
) -> None:
    """Run the service against DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS."""
    settings = service_settings()
    if not relay:
        settings = settings.model_copy(update={"relay_in_process": False})
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(_serve(settings))


def _dev_master_key() -> Path:
    """A master key for the embedded stack, made once and kept beside it (mode 0600)."""
    from service.adapters.crypto import MasterKey

    path = DEV_MASTER_KEY.resolve()
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(MasterKey.generate_text() + "\n")
    return path


@cli.command()
def dev() -> None:
    """Start embedded Postgres and Kafka (127.0.0.1:9092) and the service; Ctrl-C stops all."""
    from service.devstack.provision import provisioned

    configure_logging("INFO")
    shutil.rmtree(DEV_STACK_DIR, ignore_errors=True)  # the embedded broker keeps nothing either
    DEV_STACK_DIR.mkdir()
    with provisioned(
        DEV_STACK_DIR.resolve(),
        postgres_port=DEV_POSTGRES_PORT,
        kafka_port=DEV_KAFKA_PORT,
        allow_docker=False,
    ) as endpoints:
        os.environ["DATABASE_URL"] = endpoints.database_url
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = endpoints.kafka_bootstrap_servers
        os.environ["KAFKA_IDEMPOTENT_PRODUCER"] = str(endpoints.kafka_idempotent_producer)
        # The embedded broker completes a first join after half the session timeout.
        os.environ.setdefault("KAFKA_SESSION_TIMEOUT_MS", str(DEV_SESSION_TIMEOUT_MS))
        os.environ.setdefault("TOPIC_REPLICATION_FACTOR", "1")  # one broker, and meant so
        os.environ.setdefault("MASTER_KEY_FILE", str(_dev_master_key()))
        os.environ.setdefault("AUTH_KEYS_FILE", str(tokens.dev_auth_keys()))
        os.environ.setdefault("AUTH_ISSUERS", tokens.DEV_ISSUER)
        # For trying the service out: commands may name who sends them. AUTH_MODE=required
        # make run turns that off.
        os.environ.setdefault("AUTH_MODE", "off")
        os.environ.setdefault("AUTH_ALLOW_CLAIMED_ACTORS", "true")
        settings = service_settings()
        auth = (
            f"{settings.auth_mode.value}: commands are taken at their word for who sent them"
            if settings.auth_mode.believes_claims
            else f"{settings.auth_mode.value}: every command needs a token (order-service token)"
        )
        typer.echo(
            f"Postgres {endpoints.database_url}\nKafka    {endpoints.kafka_bootstrap_servers}\n"
            f"Health   http://{settings.health_host}:{settings.health_port}/health\n"
            f"Auth     {auth}",
            err=True,
        )
        asyncio.run(_serve(settings))


@cli.command()
def relay(
    status_file: Annotated[
        Path | None, typer.Option(help="where to report status (used by `serve`)", hidden=True)
    ] = None,
    parent_pipe: Annotated[
        int | None,
        typer.Option(help="stop at end-of-file on this descriptor (used by `serve`)", hidden=True),
    ] = None,
    health: Annotated[
        bool, typer.Option(help="serve /health/live, /health/ready, /health and /metrics")
    ] = True,
) -> None:
    """Run only the outbox relay: publish committed outcomes until SIGTERM or SIGINT.

    Beside `serve --no-relay`, as a deployment of its own: any number of replicas is safe, one
    publishes at a time (an advisory lock in Postgres) and another takes over when it dies.
    Health and metrics on HEALTH_HOST:HEALTH_PORT, like the service's."""
    from service.entrypoints.relay_process import run_relay

    settings = service_settings()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(run_relay(settings, status_file, parent_pipe=parent_pipe, serve_health=health))


@cli.command()
def migrate() -> None:
    """Apply pending database migrations and exit (0 once the schema is current): for a
    deployment step or a Kubernetes Job, with a role that may change the schema."""
    import asyncpg

    from service.adapters.database import migrate as apply
    from service.errors import MigrationError

    try:
        applied = asyncio.run(apply(tool_settings().database_url))
    except (MigrationError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as error:
        detail = str(error) or type(error).__name__
        typer.echo(f"migration failed: {detail}", err=True)
        raise typer.Exit(1) from error
    typer.echo("\n".join(f"applied {name}" for name in applied) or "schema is up to date")


@cli.command("rotate-master-key")
def rotate_master_key(
    wait: Annotated[
        float,
        typer.Option(help="seconds to keep at it while keys wrapped by an old master remain"),
    ] = 60.0,
    new_signing_key: Annotated[
        bool,
        typer.Option(
            help="also start signing dead letters with a new key (whoever held the old master"
            " key could sign with the old one); letters signed before stay verifiable"
        ),
    ] = True,
) -> None:
    """Re-wrap every wrapped key (data keys, dead-letter keys, signing keys) with the current
    master key, the first of MASTER_KEY_FILE, in short chunks while the service runs.

    Rotate: put the new key on the first line of MASTER_KEY_FILE, keeping the old one below it
    (the running service picks the change up within a second), run this, then delete the old
    line and destroy the old key."""
    from service.adapters.dead_letters import add_signing_key
    from service.adapters.personal_data import (
        WRAPPED_KEY_TABLES,
        keys_not_wrapped_by_current,
        rewrap_chunk,
    )

    settings = tool_settings()
    keys = settings.load_master_key()

    async def rotate() -> tuple[int, dict[str, int]]:
        import asyncpg

        conn = await asyncpg.connect(settings.database_url)
        try:
            if new_signing_key:
                await add_signing_key(conn, keys)
            rewrapped, clean_checks = 0, 0
            deadline = asyncio.get_running_loop().time() + wait
            while True:
                for table in WRAPPED_KEY_TABLES:
                    while done := await rewrap_chunk(conn, keys, table):
                        rewrapped += done
                # A service that has not seen the new key yet may still wrap with the old one,
                # in a transaction not committed yet, and rows a transaction held were skipped:
                # done only when none is left twice, a settling pause apart.
                left = await keys_not_wrapped_by_current(conn, keys)
                clean_checks = 0 if any(left.values()) else clean_checks + 1
                if clean_checks == 2 or asyncio.get_running_loop().time() > deadline:
                    return rewrapped, left
                await asyncio.sleep(ROTATION_SETTLE_SECONDS if clean_checks else 0.5)
        finally:
            await conn.close()

    rewrapped, left = asyncio.run(rotate())
    current = keys.current.key_id
    typer.echo(f"re-wrapped {rewrapped} keys with master key {current}")
    if any(left.values()):
        still = ", ".join(f"{table} {n}" for table, n in left.items() if n)
        typer.echo(f"still wrapped by another master key: {still}; run it again", err=True)
        raise typer.Exit(1)
    typer.echo("every key is wrapped by it: the other master keys can be removed")


@cli.command()
def send(
    command_type: Annotated[str, typer.Argument(help="e.g. purchase_order.create, order.create")],
    document_id: Annotated[
        str, typer.Argument(help="PO-1, O-1, or the customer id for customer.redact")
    ],
    payload: Annotated[str, typer.Argument(help="the command's payload as JSON")] = "{}",
    tenant: Annotated[str, typer.Option(help="tenant id")] = "demo",
    actor: Annotated[
        str | None, typer.Option(help="who sends it, TYPE:ID, e.g. customer:CUST-1")
    ] = None,
    expected_version: Annotated[int | None, typer.Option(help="optimistic check")] = None,
    command_id: Annotated[str | None, typer.Option(help="default: a new UUID")] = None,
    wait: Annotated[bool, typer.Option(help="wait for and print the outcome")] = True,
    dry_run: Annotated[
        bool, typer.Option(help="print what it would do (a preview); change nothing")
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="ORDER_SERVICE_TOKEN",
            help="an actor token (JWT) bound to this command (its jti is the command_id, which"
            f" send then uses), sent as `{AUTHORIZATION}: {BEARER_SCHEME}`",
        ),
    ] = None,
    sign: Annotated[
        bool,
        typer.Option(
            help="sign a token for --actor, bound to this command and good for a minute, with"
            " a key of AUTH_KEYS_FILE (make run makes one)"
        ),
    ] = False,
) -> None:
    """Send one command and print its outcome (events or the rejection)."""
    from service.entrypoints import operator

    try:
        body_payload = json.loads(payload)
    except json.JSONDecodeError as error:
        raise typer.BadParameter(f"payload is not JSON: {error}") from error
    settings = tool_settings()
    family = operator.family_of(settings, command_type)
    if family is None:
        prefixes = ", ".join(
            f"'{p}'" for f in families.registered(settings) for p in f.command_prefixes
        )
        raise typer.BadParameter(f"{command_type!r} starts with none of {prefixes}")
    if token is not None and sign:
        raise typer.BadParameter("give --token or --sign, not both")
    actor_type, _, actor_id = (actor or f"user:{os.environ.get('USER', 'cli')}").partition(":")
    chosen_id = _command_id(command_id, token)
    if sign:
        token = tokens.mint(
            settings,
            subject=actor_id,
            role=actor_type,
            tenant=tenant,
            scopes=[tokens.scope_for(settings, command_type)],
            ttl_seconds=60,
            command_id=chosen_id,
        )
    envelope: dict[str, Any] = {
        "command_id": str(chosen_id),
        "type": command_type,
        "tenant_id": tenant,
        family.commands.id_field_for(command_type): document_id,
        "payload": body_payload,
    }
    if token is None or actor is not None:  # else the token says who acts
        envelope["actor"] = {"type": actor_type, "id": actor_id}
    if expected_version is not None:
        envelope["expected_version"] = expected_version
    if dry_run:
        envelope["dry_run"] = True
    outcome_ok = asyncio.run(
        operator.send(settings, family, envelope, wait, typer.echo, token=token)
    )
    raise typer.Exit(0 if outcome_ok else 1)


def _command_id(given: str | None, token: str | None) -> uuid.UUID:
    """The command's id: the one a token is bound to, else the one given, else a new one."""
    try:
        chosen = uuid.UUID(given) if given is not None else None
    except ValueError as error:
        raise typer.BadParameter(f"{given!r} is not a UUID", param_hint="--command-id") from error
    bound = tokens.bound_command(token) if token is not None else None
    if bound is not None and chosen is not None and bound != chosen:
        raise typer.BadParameter(
            f"the token is bound to command {bound}, not {chosen}", param_hint="--token"
        )
    return bound or chosen or uuid.uuid4()


@cli.command()
def token(
    subject: Annotated[str, typer.Option(help="who acts: the `sub` claim, e.g. CUST-1")],
    role: Annotated[str, typer.Option(help="customer, user, service or system")] = "user",
    tenant: Annotated[str, typer.Option(help="the tenant the token is for")] = "demo",
    command_id: Annotated[
        str | None,
        typer.Option(help="bind the token to this command (its jti); send it with this id"),
    ] = None,
    command_type: Annotated[
        str | None,
        typer.Option(help="grant the one scope this command type needs, e.g. order.create"),
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(help="e.g. orders:write (repeatable); or use --command-type"),
    ] = None,
    ttl: Annotated[int, typer.Option(help="seconds until it expires, at most 3600")] = 300,
    kid: Annotated[str | None, typer.Option(help="key id in AUTH_KEYS_FILE")] = None,
) -> None:
    """Print an actor token signed with a key of AUTH_KEYS_FILE (make run makes one).

    Without --command-id the token is bound to no command, and the service refuses it unless
    its key accepts unbound tokens (see "Verified actors" in the README)."""
    settings = tool_settings()
    scopes = list(scope or ())
    if command_type is not None:
        scopes.append(tokens.scope_for(settings, command_type))
    if not scopes:
        raise typer.BadParameter("say what the token allows: --command-type or --scope")
    try:
        bound = uuid.UUID(command_id) if command_id is not None else None
    except ValueError as error:
        raise typer.BadParameter(
            f"{command_id!r} is not a UUID", param_hint="--command-id"
        ) from error
    typer.echo(
        tokens.mint(
            settings,
            subject=subject,
            role=role,
            tenant=tenant,
            scopes=sorted(set(scopes)),
            ttl_seconds=ttl,
            key_id=kid,
            command_id=bound,
        )
    )


@cli.command()
def tail(
    from_beginning: Annotated[bool, typer.Option(help="replay what is already there")] = False,
) -> None:
    """Follow events, rejections, dead letters and inventory movements as they are published."""
    from service.entrypoints import operator

    asyncio.run(operator.tail(tool_settings(), from_beginning, typer.echo))


@cli.command()
def show(
    document_id: Annotated[str, typer.Argument(help="a document id, e.g. PO-1 or O-1")],
    tenant: Annotated[str, typer.Option(help="tenant id")] = "demo",
) -> None:
    """Print the current state and history of every document with this id, of any family."""
    from service.entrypoints import operator

    found = asyncio.run(operator.show(tool_settings(), tenant, document_id, typer.echo))
    raise typer.Exit(0 if found else 1)


def main() -> None:
    cli()
