"""`/docs`: Swagger UI over the merged `/openapi.json`, under a strict Content-Security-Policy.

Swagger UI's files come from the flask-swagger-ui package and are served from here (no
CDN). The page itself is ours rather than the package's template: that template starts
Swagger UI from an inline `<script>`, which a policy allowing only the page's own files
(`script-src 'self'`) refuses. Ours loads the same start-up code from a file instead.
"""

from __future__ import annotations

from pathlib import Path

import flask_swagger_ui
from flask import Blueprint, Flask, Response, send_from_directory

# Where flask-swagger-ui keeps Swagger UI's distribution (bundle, preset, CSS, icons).
SWAGGER_UI_DIST = Path(flask_swagger_ui.__file__).resolve().parent / "dist"
PAGE_DIR = Path(__file__).resolve().parent / "templates" / "docs"
PAGE_FILES = frozenset({"index.html", "swagger-initializer.js"})

# Everything the page loads comes from the gateway itself: its scripts and styles, the
# spec and the calls a reader tries out (connect-src). Icons are `data:` URIs inside
# Swagger UI's stylesheet, never fetched from anywhere. No inline script, no eval, no
# frames, no other origin.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

docs = Blueprint("docs", __name__, url_prefix="/docs")


@docs.get("/")
@docs.get("/<path:path>")
def docs_file(path: str = "index.html") -> Response:
    """The page, its start-up script, or one of Swagger UI's files."""
    if path in PAGE_FILES:
        return send_from_directory(PAGE_DIR, path)
    return send_from_directory(SWAGGER_UI_DIST, path)


@docs.after_request
def add_content_security_policy(response: Response) -> Response:
    """Every answer under /docs carries the policy (the page and the files it loads)."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


def init_app(app: Flask) -> None:
    """Serve the Swagger UI page at /docs."""
    app.register_blueprint(docs)
