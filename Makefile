# `make run`: the provider on its embedded defaults beside a demo app. `make test`: the whole suite.
VENV := .venv

.PHONY: run test

$(VENV)/bin/python:
	python3 -m venv $(VENV)

run: $(VENV)/bin/python
	$(VENV)/bin/pip install -q -e .
	$(VENV)/bin/idp demo

test: $(VENV)/bin/python
	bash scripts/prepare-test-machine
	$(VENV)/bin/pip install -q -e '.[test]'
	$(VENV)/bin/pytest
