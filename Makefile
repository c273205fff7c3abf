# `make run`: the provider on its embedded defaults beside a demo app. `make test`: the whole suite.
# `make lint`: ruff (lint and format) and mypy --strict, as CI runs them before the suite.
# `make screenshots`: every hosted page at 1280 and 390 px, in Chromium, into screenshots/ (git-ignored).
# `make catalogue`: the translatable strings extracted again and merged into each language's .po file.
VENV := .venv
# The package with its test and lint tools: installed once, and again when pyproject.toml changes.
DEV := $(VENV)/.dev-installed
# The package alone, for `make run`: the same rule.
RUN := $(VENV)/.run-installed

# The compiled message catalogues: the install compiles them (hatch_build.py); again when a .po changes.
CATALOGUES := $(patsubst %.po,%.mo,$(wildcard idp/translations/*/LC_MESSAGES/messages.po))

.PHONY: run test lint screenshots catalogue

$(VENV)/bin/python:
	python3 -m venv $(VENV)

$(DEV): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

$(RUN): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/pip install -q -e .
	touch $@

%.mo: %.po | $(VENV)/bin/python
	$(VENV)/bin/pybabel --quiet compile --input-file $< --output-file $@

run: $(RUN) $(CATALOGUES)
	$(VENV)/bin/idp demo

test: $(DEV) $(CATALOGUES)
	bash scripts/prepare-test-machine
	$(VENV)/bin/pytest

lint: $(DEV)
	$(VENV)/bin/ruff check idp tests
	$(VENV)/bin/ruff format --check idp tests
	$(VENV)/bin/mypy --strict idp/

screenshots: $(DEV) $(CATALOGUES)
	bash scripts/prepare-test-machine
	$(VENV)/bin/python scripts/screenshots.py

catalogue: $(DEV)
	mkdir -p build
	$(VENV)/bin/pybabel --quiet extract --mapping-file babel.cfg --no-location --sort-output \
		--add-comments Translators: --output-file build/messages.pot .
	$(VENV)/bin/pybabel --quiet update --input-file build/messages.pot --output-dir idp/translations \
		--no-fuzzy-matching --ignore-obsolete
