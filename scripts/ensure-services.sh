#!/usr/bin/env bash
# Make sure the servers the test suite talks to are up: PostgreSQL, RabbitMQ, Redis on
# 127.0.0.1. Starts any that is installed but stopped; fails with one clear line otherwise.
# Also makes sure nginx, wrk, docker-compose, chromium and the AsyncAPI CLI are installed (as
# root it installs the Debian packages).
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # name port seconds
  local i
  for ((i = 0; i < $3 * 4; i++)); do
    port_open "$2" && return 0
    sleep 0.25
  done
  echo "error: $1 did not start listening on 127.0.0.1:$2 within $3 s" >&2
  return 1
}

ensure_postgresql() {
  if port_open 5432; then return 0; fi
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
    wait_port PostgreSQL 5432 30
  else
    echo "error: PostgreSQL is not running on 127.0.0.1:5432 and is not installed (apt-get install postgresql)" >&2
    exit 1
  fi
}

ensure_rabbitmq() {
  if port_open 5672; then return 0; fi
  if command -v rabbitmq-server >/dev/null; then
    echo "starting RabbitMQ"
    rabbitmq-server -detached
    wait_port RabbitMQ 5672 90
    rabbitmqctl -q await_startup >/dev/null
  else
    echo "error: RabbitMQ is not running on 127.0.0.1:5672 and is not installed (apt-get install rabbitmq-server)" >&2
    exit 1
  fi
}

ensure_redis() {
  if port_open 6379; then return 0; fi
  if command -v redis-server >/dev/null; then
    echo "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    wait_port Redis 6379 15
  else
    echo "error: Redis is not running on 127.0.0.1:6379 and is not installed (apt-get install redis-server)" >&2
    exit 1
  fi
}

# Tools the tests run themselves (nginx for the edge tests, wrk for the benchmark's own
# tests) only have to be installed; as root the Debian package is installed if missing.
ensure_package() { # command package
  if command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ]; then return 0; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing $2 (Debian package)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  else
    echo "error: the tests need $1; install it (apt-get install $2)" >&2
    exit 1
  fi
}
ensure_nginx() { ensure_package nginx nginx-light; }
ensure_wrk() { ensure_package wrk wrk; }
# The alert rules' unit tests and the Prometheus test (Debian's prometheus brings promtool).
ensure_promtool() { ensure_package promtool prometheus; }
# The docs page's browser test (tests/e2e/test_docs_page.py) drives Debian's chromium
# through its chromedriver (Debian's chromium-driver, of the same version).
ensure_chromium() {
  ensure_package chromium chromium
  ensure_package chromedriver chromium-driver
}
# `make chaos` cuts a broker node off from its peers with nft inside the node's namespace.
ensure_nftables() { ensure_package nft nftables; }
# `make test` and `make lint` validate docker-compose.yml offline: the compose plugin or
# docker-compose.
ensure_compose() {
  docker compose version >/dev/null 2>&1 || ensure_package docker-compose docker-compose
}

# `make compose-test` needs a Docker engine: Debian's docker.io, started here when it is
# installed but not running (no systemd needed), and docker-compose.
ensure_docker() {
  if docker info >/dev/null 2>&1; then return 0; fi
  ensure_package dockerd docker.io
  echo "starting the Docker engine"
  mkdir -p /var/log
  nohup dockerd >>/var/log/dockerd.log 2>&1 &
  local i
  for ((i = 0; i < 120; i++)); do
    docker info >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "error: the Docker engine did not start within 60 s (see /var/log/dockerd.log)" >&2
  return 1
}

# The AsyncAPI project's CLI validates docs/asyncapi.yaml; npm installs the version pinned
# in tools/asyncapi/package-lock.json (again whenever the lock file changes).
ensure_asyncapi() {
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tools/asyncapi" && pwd)"
  command -v npm >/dev/null || ensure_package npm npm
  if [ ! -x "$dir/node_modules/.bin/asyncapi" ] ||
    [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    echo "installing the AsyncAPI CLI (npm ci in tools/asyncapi)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}

for name in "$@"; do
  "ensure_$name"
done
