# One entry point per task; every target loops over the services where that makes sense.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SERVICES := auth orders notifications

.DEFAULT_GOAL := help
.PHONY: help install run test test-only lint fmt typecheck migrate clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,otel]'
	touch $@

install: $(STAMP) ## create .venv and install the suite with its dev tools and span export

run: $(STAMP) ## run the whole suite locally (SQLite, local SMTP sink, gateway on :8080)
	scripts/run.sh

# The whole suite must keep at least this share of its lines and branches covered: 93.7%
# measured on 2026-12-02, less a point of room for changes measured on other machines.
# Raise it as coverage grows. A subset chosen with PYTEST_ARGS is only reported.
COVERAGE_FLOOR ?= $(if $(PYTEST_ARGS),0,92)

test: lint test-only ## make lint, then every test against the real PostgreSQL, RabbitMQ and Redis

test-only: $(STAMP) ## every test with coverage (total, floor, ten slowest tests), without lint
	scripts/ensure-services.sh postgresql rabbitmq redis nginx wrk compose asyncapi
	$(BIN)/pytest --cov --cov-fail-under=$(COVERAGE_FLOOR) --durations=10 $(PYTEST_ARGS)

lint: $(STAMP) ## ruff, ruff format --check, mypy, the CI workflow's schema, the ops checks
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared services gateway bench
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(MAKE) --no-print-directory lint-ops

typecheck: $(STAMP) ## mypy only
	$(BIN)/mypy shared services gateway bench

fmt: $(STAMP) ## format and autofix
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrate: $(STAMP) ## apply every service's migrations to its database (env decides which)
	@for s in $(SERVICES); do \
	  if [ -d services/$$s/migrations ]; then $(BIN)/flask --app services.$$s db upgrade || exit 1; fi; \
	done

# -- event contracts (shared/contracts) ---------------------------------------------------
.PHONY: asyncapi asyncapi-validate contract-snapshots
ASYNCAPI_CLI := tools/asyncapi/node_modules/.bin/asyncapi

asyncapi: $(STAMP) ## regenerate docs/asyncapi.yaml from the contract catalogue
	$(BIN)/python -m shared.contracts.asyncapi

asyncapi-validate: $(STAMP) ## validate docs/asyncapi.yaml with the AsyncAPI project's CLI
	scripts/ensure-services.sh asyncapi
	ASYNCAPI_METRICS_CONFIG_PATH=tools/asyncapi/analytics-off.json $(ASYNCAPI_CLI) validate docs/asyncapi.yaml

contract-snapshots: $(STAMP) ## record the schema snapshot of a new event version (or an added optional field)
	$(BIN)/python -m shared.contracts.compatibility

clean: ## remove local data (var/) and caches
	rm -rf var .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* htmlcov

# -- containers (docker-compose.yml) and operations checks -------------------------------
.PHONY: up down logs lint-ops
COMPOSE = $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
# Only the compose plugin can wait for the healthchecks; docker-compose 1.x returns at once.
COMPOSE_WAIT = $(if $(filter compose,$(COMPOSE)),--wait,)
# Dummy values: `config -q` only checks that the file resolves; the real ones live in .env.
LINT_COMPOSE_ENV := AUTH_DB_PASSWORD=lint ORDERS_DB_PASSWORD=lint NOTIFICATIONS_DB_PASSWORD=lint \
	RABBITMQ_PASSWORD=lint RABBITMQ_AUTH_PASSWORD=lint RABBITMQ_ORDERS_PASSWORD=lint \
	RABBITMQ_NOTIFICATIONS_PASSWORD=lint RABBITMQ_GATEWAY_PASSWORD=lint \
	REDIS_PASSWORD=lint REDIS_GATEWAY_PASSWORD=lint
K8S_MANIFESTS := $(filter-out deploy/k8s/kustomization.yaml,$(wildcard deploy/k8s/*.yaml))

up: ## build the images and start the whole suite in containers (needs .env, see docs/operate.md)
	$(COMPOSE) up --detach --build $(COMPOSE_WAIT)

down: ## stop the containers (volumes, i.e. the data, are kept)
	$(COMPOSE) down

logs: ## follow the containers' logs (SERVICE=auth for one)
	$(COMPOSE) logs --follow --tail=100 $(SERVICE)

lint-ops: $(STAMP) ## hadolint the Dockerfiles, check docker-compose.yml and deploy/k8s
	scripts/ensure-services.sh compose
	$(BIN)/hadolint services/*/Dockerfile gateway/Dockerfile
	$(LINT_COMPOSE_ENV) $(COMPOSE) --project-directory . -f docker-compose.yml config --quiet
	$(BIN)/kubernetes-validate --strict --quiet $(K8S_MANIFESTS)

# -- benchmarks (bench/, results in BENCHMARKS.md and bench/results/) ----------------------
.PHONY: bench bench-quick

bench: $(STAMP) ## measure the suite under gunicorn + wrk on this machine (~35 min)
	scripts/ensure-services.sh postgresql rabbitmq redis
	bench/ensure-tools.sh
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-quick: $(STAMP) ## the short benchmark (under 2 minutes)
	scripts/ensure-services.sh postgresql rabbitmq redis
	bench/ensure-tools.sh
	$(BIN)/python -m bench.run --quick $(BENCH_ARGS)
