# `make run`: the provider on its embedded defaults beside a demo app. `make test`: the whole suite.
# `make lint`: ruff (lint and format) and mypy --strict, as CI runs them before the suite.
VENV := .venv
# The package with its test and lint tools: installed once, and again when pyproject.toml changes.
DEV := $(VENV)/.dev-installed
# The package alone, for `make run`: the same rule.
RUN := $(VENV)/.run-installed

.PHONY: run test lint

$(VENV)/bin/python:
	python3 -m venv $(VENV)

$(DEV): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

$(RUN): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/pip install -q -e .
	touch $@

run: $(RUN)
	$(VENV)/bin/idp demo

test: $(DEV)
	bash scripts/prepare-test-machine
	$(VENV)/bin/pytest

lint: $(DEV)
	$(VENV)/bin/ruff check idp tests
	$(VENV)/bin/ruff format --check idp tests
	$(VENV)/bin/mypy --strict idp/
