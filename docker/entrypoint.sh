#!/bin/sh
# Entry point of every image of the suite (the Dockerfile sets SERVICE_NAME).
#
#   web       wait for the database, migrate (unless RUN_MIGRATIONS=0), then exec gunicorn
#   migrate   wait for the database, migrate, exit (the Kubernetes migration Job)
#   CMD ...   wait for the database, then exec CMD: a relay, a consumer, a `flask` command
#
# Migrating also declares the queues of a service that consumes events (orders,
# notifications, and the gateway when REDIS_URL is set), when AMQP_URL is given: the broker
# routes an event only to queues that exist, so a queue must exist before any relay
# publishes, not only once its consumer container first starts.
#
# `exec` everywhere: the server, not this shell, must receive SIGTERM to drain in time.
set -eu

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
service="${SERVICE_NAME:?SERVICE_NAME must name the service: auth, orders, notifications or gateway}"
python="${PYTHON:-python}"
if [ "$service" = gateway ]; then
    # Timeout above GATEWAY_READ_TIMEOUT (15 s): a slow upstream yields a 504, not a killed
    # worker. Threads carry the concurrency; each keeps its own upstream connections.
    : "${WSGI_APP:=gateway.wsgi:app}" "${GUNICORN_TIMEOUT:=60}" "${GUNICORN_THREADS:=8}"
    export GUNICORN_TIMEOUT GUNICORN_THREADS
fi

database_var="$(printf '%s' "$service" | tr '[:lower:]' '[:upper:]')_DATABASE_URL"
# The gateway has no database; a service without its URL fails later with a clear error.
database_url=$(printenv "$database_var" || true)

wait_for_database() {
    if [ -n "$database_url" ]; then
        "$python" "$here/wait_for.py" "$database_var" --timeout "${WAIT_FOR_DATABASE_SECONDS:-60}"
    fi
}

declare_queues() {
    if [ -z "${AMQP_URL:-}" ]; then
        return 0
    fi
    case "$service" in
    orders | notifications)
        "$python" -m "services.$service.worker" setup
        ;;
    gateway)
        # Without Redis no gateway.worker runs, so there is no queue of the gateway's.
        if [ -n "${REDIS_URL:-}" ]; then
            "$python" -m gateway.worker setup
        fi
        ;;
    esac
}

migrate() {
    migrate_database
    declare_queues
}

migrate_database() {
    if [ -z "$database_url" ]; then
        return 0
    fi
    flask --app "services.$service" db upgrade
    if [ "$service" = auth ]; then
        # Compose keeps keys in a volume and makes the first one; Kubernetes mounts a Secret.
        if [ "${AUTH_KEYS_ENSURE:-0}" = 1 ]; then
            flask --app services.auth keys ensure
        fi
        if [ -n "${AUTH_BOOTSTRAP_ADMIN_EMAIL:-}" ]; then
            flask --app services.auth ensure-admin
        fi
    fi
}

command="${1:-web}"
case "$command" in
web)
    shift || true
    wait_for_database
    if [ "${RUN_MIGRATIONS:-1}" = 1 ]; then
        migrate
    fi
    exec gunicorn --config "${GUNICORN_CONFIG:-python:shared.gunicorn_conf}" \
        "${WSGI_APP:-services.$service.wsgi:app}" "$@"
    ;;
migrate)
    wait_for_database
    migrate
    ;;
*)
    wait_for_database
    exec "$@"
    ;;
esac
