# The two commands of the README: `make run` and `make test`.
# Both create .venv on first use and install the pinned requirements into it.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export PORTAL_BIND ?= 127.0.0.1:8000
export WEB_CONCURRENCY ?= 2
export WORKER_CONCURRENCY ?= 2
DEMO_ORDERS ?= 300
# The demo logins go next to the database, under VAR_DIR like settings.py.
DEMO_CREDENTIALS ?= $(or $(VAR_DIR),var)/demo-credentials.json
PYTEST_ARGS ?=

.PHONY: run test lint format messages clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] >= (3, 11), "Python 3.11 or newer is needed"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo --orders $(DEMO_ORDERS) --credentials $(DEMO_CREDENTIALS)
	@# web, the two workers and beat; the URL and logins are printed once all are up.
	@$(BIN)/python bin/run-portal --credentials $(DEMO_CREDENTIALS)

test: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python -m pytest -n auto $(PYTEST_ARGS)

format: $(VENV)/.dev-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

messages: $(VENV)/.dev-installed
	$(BIN)/python manage.py makemessages --locale zh_Hans --no-obsolete --no-location --ignore .venv --ignore var --ignore tests --ignore bench
	$(BIN)/python manage.py compilemessages --locale zh_Hans --ignore .venv

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis
