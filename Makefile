# callstream: every target sets up what it needs from a fresh clone (only python3 is assumed).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TOOLS := .tools
SAM := $(TOOLS)/sam/bin/sam
SAM_VERSION := 1.170.0
# The SAM translator that SAM CLI $(SAM_VERSION) transforms with, pinned: make validate lints what it makes.
SAM_TRANSLATOR_VERSION := 1.115.0
UV := $(TOOLS)/uv/bin/uv
UV_VERSION := 0.13.9
IMAGE_LOCK := services/stream_server/requirements.lock
TRANSFORMED := local/template.transformed.json
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Tools that talk to AWS APIs get a region and never real credentials from this Makefile.
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0

.PHONY: help venv test unit lint typecheck validate transform build demo invoke up bench tape events docs lock clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml layers/shared/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

venv: $(STAMP)  ## create .venv and install everything pinned

$(SAM):
	test -x $(TOOLS)/sam/bin/python || $(PYTHON) -m venv $(TOOLS)/sam
	$(TOOLS)/sam/bin/python -m pip install -q aws-sam-cli==$(SAM_VERSION) aws-sam-translator==$(SAM_TRANSLATOR_VERSION)

$(UV):
	test -x $(TOOLS)/uv/bin/python || $(PYTHON) -m venv $(TOOLS)/uv
	$(TOOLS)/uv/bin/python -m pip install -q uv==$(UV_VERSION)

lock: $(STAMP) $(UV)  ## the stream-server image's hashed lock, resolved for linux/amd64 Python 3.13
	$(BIN)/python scripts/image_requirements.py > $(TOOLS)/image.in
	$(UV) pip compile $(TOOLS)/image.in --python-version 3.13 --python-platform x86_64-manylinux_2_28 \
		--generate-hashes --no-header --quiet --output-file $(IMAGE_LOCK)

lint: $(STAMP)  ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)  ## mypy --strict on layers/ and services/
	$(BIN)/mypy

validate: $(STAMP) $(SAM)  ## cfn-lint on template.yaml and on what the SAM transform makes of it; sam validate --lint
	$(BIN)/cfn-lint template.yaml
	$(TOOLS)/sam/bin/python scripts/transform_template.py template.yaml .aws-sam/transformed.json
	$(BIN)/cfn-lint .aws-sam/transformed.json
	@cmp -s .aws-sam/transformed.json $(TRANSFORMED) || { \
		echo "$(TRANSFORMED) is not what template.yaml transforms to: run make transform"; exit 1; }
	$(SAM) validate --lint --template template.yaml

transform: $(SAM)  ## write what CloudFormation gets ($(TRANSFORMED)): the embedded stack is wired from it
	$(TOOLS)/sam/bin/python scripts/transform_template.py template.yaml $(TRANSFORMED)

build: $(SAM)  ## sam build (no Docker, no local python3.13: makefile build methods)
	set -o pipefail; $(SAM) build --template template.yaml 2>&1 | { grep -v "WARNING: Location" || true; }

test: $(STAMP)  ## lint, typecheck, validate and build the template, then the whole test suite
	$(MAKE) lint typecheck validate build
	@$(BIN)/python -c 'import local.console_session as c; w = c.browser_missing(); w and print("NOTE: skipping the console browser tests:", w)'
	$(BIN)/pytest

unit: $(STAMP)  ## unit tests only
	$(BIN)/pytest tests/unit

tape: $(STAMP)  ## regenerate the session tapes in events/tapes from samples/
	$(BIN)/python scripts/make_tapes.py

docs: $(STAMP)  ## regenerate docs/configuration.md from the settings classes
	$(BIN)/python scripts/settings_doc.py

events: $(STAMP)  ## regenerate events/api and events/callbacks (signed with the test credentials)
	$(BIN)/python scripts/make_events.py $(ARGS)

demo: $(STAMP)  ## run a simulated call end to end on this machine (ARGS="--help" for options)
	$(BIN)/python -m local.demo $(ARGS)

invoke: $(STAMP)  ## replay one event through its real handler on the embedded stack: EVENT=events/... [FN=folder]
	@test -n "$(EVENT)" || { echo "make invoke EVENT=events/<folder>/<file>.json [FN=<function folder>]"; exit 2; }
	$(BIN)/python -m local.invoke $(if $(FN),--function $(FN)) $(ARGS) $(EVENT)

up: $(STAMP)  ## keep the embedded stack running and print its endpoints and token
	$(BIN)/python -m local.up $(ARGS)

bench: $(STAMP)  ## run every benchmark, write bench/LATEST.md (ARGS="--quick" to shorten the load test)
	$(BIN)/python -m bench $(ARGS)

clean:  ## remove build outputs (keeps .venv)
	rm -rf .aws-sam out .pytest_cache .mypy_cache .ruff_cache
