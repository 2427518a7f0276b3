"""gunicorn entry point: `gunicorn -c gateway/gunicorn.conf.py gateway.wsgi:app`.

Imported in each worker after the fork (the config sets preload_app = False), so the
revocation listener thread and every socket belong to that worker alone.
"""

from __future__ import annotations

from gateway import create_app
from gateway.revocation import BroadcastListener, MemoryRevocationStore, user_deactivated_handler

app = create_app()

_store = app.extensions["revocations"]
if isinstance(_store, MemoryRevocationStore):
    # No Redis: each worker listens for deactivations itself (see gateway.revocation).
    BroadcastListener(app.config["AMQP_URL"], user_deactivated_handler(_store)).start()
