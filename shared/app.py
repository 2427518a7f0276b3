"""The part of every service's `create_app` that is the same everywhere."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask, Request, request
from flask_smorest import Api, Blueprint
from marshmallow import Schema, ValidationError, fields
from webargs.flaskparser import FlaskParser, abort
from werkzeug.exceptions import RequestEntityTooLarge

from shared import errors, health, observability, tokens
from shared.config import Env, common_config, validate_token_lifetimes
from shared.openapi import create_api
from shared.proxies import TrustedProxyFix, trusted_proxy_config
from shared.schemas import UNSTORABLE_TEXT_MESSAGE, unstorable_text
from shared.tokens import JWKSCache, TokenVerifier

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy


class RequestParser(FlaskParser):
    """webargs' parser with the suite's rules for client input.

    - Bodies and query strings refuse arguments the schema does not declare: webargs'
      default for the query string is to drop them silently, whatever the schema says.
      Headers and cookies stay permissive (clients and proxies send many we never read).
    - A string (or key) holding NUL or an unpaired surrogate is a 422 naming its field, for
      every schema at once: either would otherwise fail later, as a 500, in argon2, hashlib,
      the database driver or PostgreSQL.
    - A query or form argument that is not a list, given more than once, is a 422: webargs
      would keep the first value silently, and the document says it is one string.
    - Every body Python's json module cannot load is a 400: webargs maps only
      JSONDecodeError, while json.loads also raises a plain ValueError for an integer of
      more than 4300 digits and RecursionError for very deep nesting.
    """

    DEFAULT_UNKNOWN_BY_LOCATION: dict[str, str | None] = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        # None: the schema's own `unknown` (marshmallow's default and StrictSchema: RAISE).
        "query": None,
        "querystring": None,
        "form": None,
    }
    TEXT_LOCATIONS = frozenset({"json", "form", "query", "querystring"})

    def _raw_load_json(self, req: Request) -> Any:
        try:
            return super()._raw_load_json(req)
        except json.JSONDecodeError:
            raise  # webargs' own handling (400, or "no body" when empty)
        except (ValueError, RecursionError) as exc:
            abort(400, exc=exc, messages={"json": ["Invalid JSON body."]})

    def pre_load(
        self, location_data: Mapping[str, Any], *, schema: Schema, req: Request, location: str
    ) -> Mapping[str, Any]:
        """Refuse text no service could store before the schema sees it."""
        if location not in self.TEXT_LOCATIONS:
            return location_data
        if location in ("query", "querystring"):
            document: Any = req.args.to_dict(flat=False)
        elif location == "form":
            document = req.form.to_dict(flat=False)
        else:
            document = location_data
        errors = unstorable_text(document)
        if errors:
            # Query and form values come as lists: name the argument, not its position.
            if document is not location_data:
                errors = {name: [UNSTORABLE_TEXT_MESSAGE] for name in errors}
            raise ValidationError(errors)
        if document is not location_data:
            repeated = _repeated_single_values(document, schema)
            if repeated:
                raise ValidationError(repeated)
        return location_data


REPEATED_MESSAGE = "Give this argument once."


def _repeated_single_values(document: Mapping[str, list[Any]], schema: Schema) -> dict[str, Any]:
    """{name: [message]} for each argument given more than once whose field is not a list."""
    by_name = {field.data_key or name: field for name, field in schema.fields.items()}
    return {
        name: [REPEATED_MESSAGE]
        for name, values in document.items()
        if len(values) > 1 and not isinstance(by_name.get(name), fields.List)
    }


class ApiBlueprint(Blueprint):  # type: ignore[misc]  # flask-smorest is untyped
    """The flask-smorest Blueprint every service uses, with the suite's RequestParser."""

    ARGUMENTS_PARSER = RequestParser()

    def arguments(self, schema: type[Schema] | Schema, **kwargs: Any) -> Any:
        """flask-smorest's `arguments`, with a schema class instantiated once, here.

        Given a class, webargs builds an instance (and its nested schemas) on every
        request; an instance is reused. Schemas keep no per-load state, and the OpenAPI
        document is the same for a class and its plain instance.
        """
        if isinstance(schema, type):
            schema = schema()
        return super().arguments(schema, **kwargs)


def create_base_app(
    service: str,
    import_name: str,
    service_config: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    *,
    env: Env | None = None,
) -> Flask:
    """A Flask app with the suite's config, problem+json errors, request ids, logs, metrics."""
    if env is None:
        # An explicit APP_ENV in the overrides (tests) decides which defaults apply.
        forced = (
            {"APP_ENV": str(overrides["APP_ENV"])} if overrides and "APP_ENV" in overrides else {}
        )
        env = Env({**os.environ, **forced})
    app = Flask(import_name)
    app.config.update(common_config(service, env))
    app.config.update(service_config)
    app.config.update(
        API_TITLE=f"{service} service",
        API_VERSION="v1",
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        TRUSTED_PROXY_HOPS=env.integer("TRUSTED_PROXY_HOPS", 0),
        TRUSTED_PROXIES=env.optional("TRUSTED_PROXIES"),
    )
    if overrides:
        app.config.update(overrides)
    validate_token_lifetimes(app.config)
    if not app.config.get("TESTING"):
        observability.configure_logging(service)
    hops = int(app.config["TRUSTED_PROXY_HOPS"])
    trusted = trusted_proxy_config(hops, app.config["TRUSTED_PROXIES"])
    if trusted is not None:
        # Only requests from our own gateway/edge: otherwise a client could pick its own IP.
        app.wsgi_app = TrustedProxyFix(app.wsgi_app, hops=hops, trusted=trusted)  # type: ignore[method-assign]
    observability.init_app(app)
    app.before_request(_refuse_oversize_body)
    return app


def _refuse_oversize_body() -> None:
    """413 for a body over MAX_CONTENT_LENGTH, however it is framed, before a view reads it.

    A declared Content-Length is refused without reading. A body without one (chunked)
    is read here to at most one byte past the limit: werkzeug would otherwise stop reading
    at the limit without an error, and the view would parse a truncated body.
    """
    from flask import current_app

    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if not limit:
        return
    if request.content_length is not None:
        if request.content_length > limit:
            raise RequestEntityTooLarge()
        return
    environ = request.environ
    if not environ.get("wsgi.input_terminated"):
        return  # no length and no server-terminated stream: werkzeug reads no body at all
    body = _read_at_most(environ["wsgi.input"], limit + 1)
    if len(body) > limit:
        raise RequestEntityTooLarge()
    # The view reads the same bytes from memory (werkzeug wraps this stream on first use).
    environ["wsgi.input"] = io.BytesIO(body)


def _read_at_most(stream: Any, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(min(remaining, 64 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def init_api(app: Flask, blueprints: Iterable[Blueprint]) -> Api:
    """flask-smorest Api with our blueprints; error handlers replaced by problem+json ones."""
    api = create_api(app, blueprints)
    # Registered after Api(app) so ours replace flask-smorest's JSON error handler.
    errors.init_app(app)
    return api


def init_service(
    app: Flask,
    *,
    db: SQLAlchemy,
    migrations_dir: str | Path,
    blueprints: Iterable[Blueprint],
    verifier: TokenVerifier,
    extra_checks: Mapping[str, health.Check] | None = None,
) -> Api:
    """Wire a service's database, migrations, token checks, /healthz + /readyz and its API.

    /readyz requires the database and `extra_checks` and reports the broker (see
    shared.health for why a broker outage leaves the service ready); a request that finds
    the database unavailable is a 503. Nothing connects here.
    """
    # Imported here: the gateway shares this module and has no database (nor SQLAlchemy).
    from flask_migrate import Migrate

    from shared.db import config_engine_options, guard_engine, normalize_database_url

    url = normalize_database_url(app.config["SQLALCHEMY_DATABASE_URI"])
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", config_engine_options(url, app.config))
    db.init_app(app)
    with app.app_context():
        for bind, engine in db.engines.items():
            # Binds that skip the ping (orders' autocommit reads) retry on a new connection.
            guard_engine(
                engine,
                ping=bind is None,
                connect_timeout=float(app.config["DATABASE_CONNECT_TIMEOUT_SECONDS"]),
                statement_timeout=float(app.config["DATABASE_STATEMENT_TIMEOUT_SECONDS"]),
            )
    # Batch mode: SQLite can only alter a table by copying it, which batch does for us.
    Migrate(app, db, directory=str(migrations_dir), render_as_batch=True)
    tokens.init_app(app, verifier)
    health.init_app(
        app,
        {
            "database": health.database_check(db),
            "broker": health.broker_check(app.config["AMQP_URL"]),
            **(extra_checks or {}),
        },
        degraded_ok={"broker"},
    )
    api = init_api(app, blueprints)
    errors.init_database_errors(app)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    return api


def remote_verifier(app: Flask) -> TokenVerifier:
    """A verifier that fetches auth's JWKS over HTTP (orders, notifications, gateway)."""
    cache = JWKSCache(
        app.config["JWKS_URL"], min_refetch_seconds=app.config["JWKS_MIN_REFETCH_SECONDS"]
    )
    return TokenVerifier(
        cache,
        issuer=app.config["JWT_ISSUER"],
        audience=app.config["JWT_AUDIENCE"],
        max_lifetime=int(app.config["AUTH_ACCESS_TOKEN_TTL_SECONDS"]),
    )
