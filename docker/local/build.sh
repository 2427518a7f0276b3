#!/usr/bin/env bash
# Build the local stand-ins for the compose file's third-party images on BASE_IMAGE and
# print the variables that point docker-compose.yml at them (see README.md here).
#
#   docker/local/build.sh BASE_IMAGE [TAG]
# Needs build/image/ from docker/wheels.sh (the mail catcher installs the suite's wheels).
set -euo pipefail
cd "$(dirname "$0")/../.."
base="${1:?usage: docker/local/build.sh BASE_IMAGE [TAG]}"
tag="${2:-dev}"
build() { # name context
  echo "building flask-suite-local/$1:$tag" >&2
  DOCKER_BUILDKIT=0 docker build --quiet --build-arg "BASE_IMAGE=$base" \
    -f "docker/local/$1/Dockerfile" -t "flask-suite-local/$1:$tag" "$2" >/dev/null
}
build postgres docker/local/postgres
build rabbitmq docker/local/rabbitmq
build redis docker/local/redis
build nginx docker/local/nginx
build mailcatcher .
build prometheus docker/local/prometheus
