"""`flask` commands of the auth service: admins, signing keys and the start-up preparation."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from services.auth import keys as signing_keys
from services.auth import registration
from services.auth.models import db
from services.auth.services import AuthDeps
from shared.errors import ServiceError
from shared.uow import unit_of_work

keys_cli = AppGroup("keys", help="Manage the RSA keys that sign access tokens.")


def _deps() -> AuthDeps:
    deps: AuthDeps = current_app.extensions["auth"]
    return deps


def _keys_dir() -> Path:
    return Path(current_app.config["AUTH_SIGNING_KEYS_DIR"])


@keys_cli.command("ensure")
def keys_ensure() -> None:
    """Create a signing key when the key directory has none."""
    key = signing_keys.ensure_key(_keys_dir())
    _deps().keys.load()
    click.echo(f"signing key {key.kid} ({key.path.name})")


@keys_cli.command("rotate")
def keys_rotate() -> None:
    """Add a new key that signs from now on; older keys stay published until removed."""
    key = signing_keys.rotate_key(_keys_dir())
    _deps().keys.load()
    click.echo(f"new signing key {key.kid} ({key.path.name})")
    click.echo("older keys remain in the JWKS; delete their files after the access-token TTL")


@keys_cli.command("list")
def keys_list() -> None:
    """Show the keys, oldest first; the last one signs."""
    for key in signing_keys.load_keys(_keys_dir()):
        click.echo(f"{key.kid}  {key.path.name}")


def _bootstrap_admin() -> bool:
    """Ensure the admin from AUTH_BOOTSTRAP_ADMIN_*; False when those are unset."""
    email = current_app.config.get("AUTH_BOOTSTRAP_ADMIN_EMAIL")
    password = current_app.config.get("AUTH_BOOTSTRAP_ADMIN_PASSWORD")
    if not email or not password:
        return False
    with unit_of_work(db.session()) as session:
        user, created = registration.ensure_bootstrap_admin(
            session=session,
            deps=_deps(),
            email=email,
            password=password,
            name=current_app.config["AUTH_BOOTSTRAP_ADMIN_NAME"],
        )
    click.echo(f"admin {user.email} {'created' if created else 'present'}")
    return True


def _fail(exc: ServiceError) -> click.ClickException:
    details = "; ".join(
        f"{name}: {' '.join(map(str, msgs))}" for name, msgs in (exc.errors or {}).items()
    )
    return click.ClickException(f"{exc.detail} {details}".strip())


@click.command("ensure-admin")
@with_appcontext
def ensure_admin() -> None:
    """Create the AUTH_BOOTSTRAP_ADMIN_EMAIL admin unless it exists; never change an account."""
    try:
        if not _bootstrap_admin():
            click.echo("AUTH_BOOTSTRAP_ADMIN_EMAIL/PASSWORD unset; no admin ensured")
    except ServiceError as exc:
        raise _fail(exc) from None


@click.command("create-admin")
@with_appcontext
@click.option("--email", required=True, help="The admin's email.")
@click.option("--name", default="Administrator", show_default=True, help="Display name.")
@click.password_option(help="Prompted for (twice) when not given.")
def create_admin(email: str, name: str, password: str) -> None:
    """Create an admin account."""
    try:
        with unit_of_work(db.session()) as session:
            user = registration.create_admin(
                session=session, deps=_deps(), email=email, password=password, name=name
            )
    except ServiceError as exc:
        raise _fail(exc) from None
    click.echo(f"admin {user.email} created ({user.id})")


@click.command("prepare")
@with_appcontext
def prepare() -> None:
    """Everything before serving: migrate the database, ensure a key and the bootstrap admin."""
    from flask_migrate import upgrade

    upgrade()
    key = signing_keys.ensure_key(_keys_dir())
    _deps().keys.load()
    click.echo(f"database migrated; signing key {key.kid}")
    try:
        _bootstrap_admin()
    except ServiceError as exc:
        raise _fail(exc) from None


def init_app(app: Flask) -> None:
    """Register the commands on the app's `flask` CLI."""
    app.cli.add_command(keys_cli)
    app.cli.add_command(ensure_admin)
    app.cli.add_command(create_admin)
    app.cli.add_command(prepare)
