# One entry point per task; every target loops over the services where that makes sense.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SERVICES := auth orders notifications

.DEFAULT_GOAL := help
.PHONY: help install run test lint fmt typecheck migrate clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP) ## create .venv and install the suite with its dev tools

run: $(STAMP) ## run the whole suite locally (SQLite, local SMTP sink, gateway on :8080)
	scripts/run.sh

test: $(STAMP) ## run every test against the real PostgreSQL, RabbitMQ and Redis
	scripts/ensure-services.sh postgresql rabbitmq redis
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff, ruff format --check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared services gateway

typecheck: $(STAMP) ## mypy only
	$(BIN)/mypy shared services gateway

fmt: $(STAMP) ## format and autofix
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrate: $(STAMP) ## apply every service's migrations to its database (env decides which)
	@for s in $(SERVICES); do \
	  if [ -d services/$$s/migrations ]; then $(BIN)/flask --app services.$$s db upgrade || exit 1; fi; \
	done

clean: ## remove local data (var/) and caches
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
