#!/usr/bin/env bash
# `make run`: the whole suite on one machine with embedded defaults (SQLite files and a
# local SMTP sink under var/), every process under one supervisor (honcho). Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."

export APP_ENV="${APP_ENV:-local}"
export VAR_DIR="${VAR_DIR:-$PWD/var}"
export AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2F}"
export SMTP_HOST="${SMTP_HOST:-127.0.0.1}" SMTP_PORT="${SMTP_PORT:-1025}"
# The services sit behind the gateway here, so they trust one X-Forwarded-For hop, from
# the gateway's address. The gateway faces clients itself: the Procfile gives it no hops.
export TRUSTED_PROXY_HOPS="${TRUSTED_PROXY_HOPS:-1}"
export TRUSTED_PROXIES="${TRUSTED_PROXIES:-127.0.0.1,::1}"
# Auth's public address is the gateway's: tokens name it as issuer, and the verification
# links mailed at registration point at it.
export JWT_ISSUER="${JWT_ISSUER:-http://127.0.0.1:${GATEWAY_PORT:-8080}/api/v1/auth}"
export PYTHONUNBUFFERED=1
BIN="$PWD/.venv/bin"
export PATH="$BIN:$PATH"

mkdir -p "$VAR_DIR/mail" "$VAR_DIR/keys"

# RabbitMQ: the one server `make run` cannot embed. Start a local one if it is installed.
broker_up() { "$BIN/python" - "$AMQP_URL" <<'PY'
import socket, sys
from urllib.parse import urlsplit
url = urlsplit(sys.argv[1])
try:
    socket.create_connection((url.hostname or "127.0.0.1", url.port or 5672), timeout=1).close()
except OSError:
    sys.exit(1)
PY
}
if ! broker_up; then
  if command -v rabbitmq-server >/dev/null 2>&1; then
    echo "RabbitMQ is not reachable at $AMQP_URL; starting the local rabbitmq-server"
    rabbitmq-server -detached
    for _ in $(seq 1 120); do broker_up && break; sleep 0.5; done
    broker_up || { echo "error: rabbitmq-server did not come up within 60 s" >&2; exit 1; }
  else
    echo "error: RabbitMQ is not reachable at $AMQP_URL; install it (apt-get install rabbitmq-server) or point AMQP_URL at one" >&2
    exit 1
  fi
fi

# Migrations for every service; auth also makes a dev signing key and the bootstrap admin.
flask --app services.auth prepare
flask --app services.orders db upgrade
# A few demo products to order (prices come from the catalogue); only the missing ones are
# added, so a product an admin changed keeps its changes across restarts.
flask --app services.orders seed-products
flask --app services.notifications db upgrade
# Queues of the consuming services, before anything publishes: the broker routes an event
# only to queues that exist, so one declared later (when its consumer first starts) would
# miss the events published until then, such as the bootstrap admin's user.registered.
"$BIN/python" -m services.orders.worker setup
"$BIN/python" -m services.notifications.worker setup

cat <<MSG
Flask microservices suite (local run; data under $VAR_DIR)
  gateway        http://127.0.0.1:${GATEWAY_PORT:-8080}   (API: /api/v1/..., docs: /docs)
  auth           http://127.0.0.1:${AUTH_PORT:-8001}
  orders         http://127.0.0.1:${ORDERS_PORT:-8002}
  notifications  http://127.0.0.1:${NOTIFICATIONS_PORT:-8003}
  SMTP sink      ${SMTP_HOST}:${SMTP_PORT} -> $VAR_DIR/mail/
  broker         $AMQP_URL
Ctrl-C stops everything.
MSG
exec "$BIN/honcho" start -f Procfile
