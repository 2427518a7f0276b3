"""gunicorn entry point: `gunicorn services.auth.wsgi:app`."""

from services.auth import create_app

app = create_app()
