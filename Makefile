# Nova Aurora citizen-service bot on WhatsApp (Rasa 3.6). `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(VENV)/bin/python
RASA   := $(VENV)/bin/rasa
# uv comes from PyPI; when it is missing, `install` fetches it with pip.
UV     := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
MODEL  := models/nova-aurora.tar.gz
TRAINING_FILES := config.yml domain.yml $(wildcard data/*.yml)
CODE   := bot actions knowledge simulator tests scripts bench
# The webhook ingress's own environment (deploy/ingress/: Python 3.12+, current aiohttp):
# a local 3.13 or 3.12 when there is one (pyenv's included), else uv fetches 3.12.
INGRESS_VENV   := $(CURDIR)/.venv-ingress
INGRESS_PYTHON ?= $(shell for p in $(HOME)/.pyenv/versions/3.13*/bin/python3 \
	$(HOME)/.pyenv/versions/3.12*/bin/python3 python3.13 python3.12; do \
	"$$p" -c "" 2>/dev/null && { command -v "$$p"; break; }; done || true)
INGRESS_TESTS  := tests/test_ingress_runtime.py tests/chaos/test_compressed_bombs.py

.PHONY: help install system-deps train run test lint format validate test-unit test-stories test-nlu clean \
        register-webhook list-webhooks bench test-fast docs docs-build eval campaign campaign-report \
        privacy-export privacy-erase test-ingress

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || \
		python3 -m pip install --quiet uv
	$(UV) sync --frozen
	@touch $@

install: $(VENV)/.installed ## Create .venv with Python 3.10 and the locked dependencies (installs uv if needed)

system-deps: ## Install the Debian packages the tests run (redis-server, chromium, nginx-light, postgresql) when missing; needs root
	@bash scripts/system-deps.sh

$(MODEL): $(VENV)/.installed $(TRAINING_FILES)
	$(RASA) train --fixed-model-name nova-aurora
	@touch $@

train: $(MODEL) ## Train the model (skipped when data and config are unchanged)

run: install train ## Start everything the bot needs (simulator, knowledge, actions, Rasa, webhook ingress); Ctrl-C stops all
	$(PY) -m scripts.devstack

validate: install ## Check domain, data and stories (rasa data validate --fail-on-warnings) and WhatsApp custom responses
	$(RASA) data validate --fail-on-warnings
	$(PY) -m scripts.check_responses domain.yml

lint: install ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check $(wildcard $(CODE))
	$(VENV)/bin/ruff format --check $(wildcard $(CODE))
	$(VENV)/bin/mypy

format: install ## Apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix $(wildcard $(CODE))
	$(VENV)/bin/ruff format $(wildcard $(CODE))

test-unit: install system-deps train ## pytest: unit, HTTP and end-to-end tests (uses the trained model)
	$(PY) -m pytest

$(INGRESS_VENV)/.installed: deploy/ingress/pyproject.toml deploy/ingress/uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || \
		python3 -m pip install --quiet uv
	UV_PROJECT_ENVIRONMENT=$(INGRESS_VENV) $(UV) sync --frozen --group test \
		--project deploy/ingress --python $(or $(INGRESS_PYTHON),3.12)
	@touch $@

test-ingress: $(INGRESS_VENV)/.installed ## The ingress's tests on its own interpreter (Python 3.12+, current aiohttp: deploy/ingress/)
	$(INGRESS_VENV)/bin/python -m pytest -q $(INGRESS_TESTS)

test-fast: install ## The inner loop (~1 min): unit and HTTP tests, no training, no rasa run (pytest -m "not e2e")
	$(PY) -m pytest -m "not e2e" -q

test-stories: install train ## End-to-end test stories (tests/test_stories.yml), failing on any prediction error
	$(RASA) test core --model $(MODEL) --stories tests/test_stories.yml \
		--fail-on-prediction-errors --out results/stories

test-nlu: install train ## NLU on held-out phrases (tests/nlu_holdout.yml); fails below 0.90 intent accuracy
	$(RASA) test nlu --model $(MODEL) --nlu tests/nlu_holdout.yml --out results/nlu
	$(PY) -m scripts.check_nlu results/nlu/intent_report.json --min-accuracy 0.90

eval: install train ## Score NLU and knowledge answers on the held-out sets (tune/final); fails below the targets on final
	$(PY) -m scripts.eval --check

test: system-deps lint validate test-unit test-ingress test-stories test-nlu ## Everything CI runs: lint, validate, pytest (docs included), the ingress on its Python, stories, NLU
	@echo "make test: all checks passed"

bench: install train ## Benchmarks on a real stack (~12 min on 2 cores): bench/results/results.{md,json}
	@mkdir -p bench/results
	$(PY) -m bench --out bench/results

campaign: install ## Send a template to a CSV, or resume it: make campaign ID=… TEMPLATE=… CSV=… [LANGUAGE=pt_BR] [CATEGORY=utility]
	$(PY) -m bot.addons.whatsapp.proactive.campaign send --id "$(ID)" --template "$(TEMPLATE)" \
		--language "$(or $(LANGUAGE),pt_BR)" --category "$(or $(CATEGORY),utility)" "$(CSV)"

campaign-report: install ## A campaign's outcomes, per recipient and in total: make campaign-report ID=… [FORMAT=csv|json]
	$(PY) -m bot.addons.whatsapp.proactive.campaign report "$(ID)" --format "$(or $(FORMAT),csv)"

docs: install ## Serve the documentation at http://localhost:8000, rebuilt on every change
	$(VENV)/bin/mkdocs serve --strict

docs-build: install ## Build the documentation site (docs/, mkdocs.yml) into site/, failing on any warning
	$(VENV)/bin/mkdocs build --strict

register-webhook: install ## Register WEBHOOK_PUBLIC_URL with Serpro (reads .env), then list to confirm
	$(PY) -m bot.addons.whatsapp.providers.serpro register
	$(PY) -m bot.addons.whatsapp.providers.serpro list

list-webhooks: install ## List the webhooks registered with Serpro
	$(PY) -m bot.addons.whatsapp.providers.serpro list

privacy-export: install ## A citizen's data as JSON for an access request (LGPD): make privacy-export ID=<phone or BSUID> [OUT=file]
	@test -n "$(ID)" || { echo "usage: make privacy-export ID=<phone or BSUID> [OUT=file]"; exit 2; }
	$(PY) -m bot.addons.whatsapp.privacy export "$(ID)" $(if $(OUT),--out "$(OUT)")

privacy-erase: install ## Erase everything stored about a citizen (LGPD): make privacy-erase ID=<phone or BSUID>
	@test -n "$(ID)" || { echo "usage: make privacy-erase ID=<phone or BSUID>"; exit 2; }
	$(PY) -m bot.addons.whatsapp.privacy erase "$(ID)"

clean: ## Remove the trained model and test results
	rm -rf models results artifacts .run site
