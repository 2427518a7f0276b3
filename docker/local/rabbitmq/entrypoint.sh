#!/bin/sh
# The default user from RABBITMQ_DEFAULT_USER/PASS (made on the first start, as in the
# official image), reachable from other containers; then the server in the foreground.
set -eu
cat >/etc/rabbitmq/rabbitmq.conf <<CONF
default_user = ${RABBITMQ_DEFAULT_USER:-guest}
default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}
loopback_users = none
CONF
exec "$@"
