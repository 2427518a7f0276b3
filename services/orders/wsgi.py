"""The WSGI entry point: `gunicorn services.orders.wsgi:app`."""

from services.orders import create_app

app = create_app()
