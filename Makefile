# cafgw: make run (the demo gateway) and make test (the whole suite) on a fresh clone.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# openapi-python-client pins typer<0.28 (the gateway: 0.29), so it has an environment of its own.
OPENAPI_VENV := $(VENV)/openapi-client
OPENAPI_STAMP := $(OPENAPI_VENV)/.installed

.PHONY: all run test test-fast lint bench fuzz system-deps broker-check clean catalogues catalogues-extract

all: $(STAMP) $(OPENAPI_STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	@touch $@

$(OPENAPI_STAMP): requirements-openapi.lock | $(STAMP)
	@test -x $(OPENAPI_VENV)/bin/python || $(PYTHON) -m venv $(OPENAPI_VENV)
	$(OPENAPI_VENV)/bin/pip install -q -r requirements-openapi.lock
	@touch $@

# The family-facing notices' gettext catalogues: gateway/locale/<lang>/LC_MESSAGES/family.po
# compiled to the family.mo files that are shipped (tests/unit/test_family_notice_language.py
# fails when a .mo is older than its .po). catalogues-extract refreshes the template from the
# texts marked family_text(...) in the code; then add each new text to every family.po.
catalogues: $(STAMP)
	$(BIN)/pybabel compile -D family -d gateway/locale --statistics

catalogues-extract: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k family_text --no-default-keywords --no-location \
		--omit-header --sort-output -o gateway/locale/family.pot .

system-deps:
	@scripts/ensure-system-deps.sh

broker-check: $(STAMP)
	@$(BIN)/cafgw broker check

run: $(STAMP) system-deps broker-check
	$(BIN)/cafgw run --demo

lint: $(STAMP)
	$(BIN)/ruff check gateway adapters tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# Tests run in TEST_WORKERS processes (pytest-xdist; each test isolates itself: its own
# vhost, queues, database and temporary folder); those that stop, restart or cluster a
# broker or database, or kill busy processes (marked serial), run after the rest,
# SERIAL_WORKERS at a time: each stops only a node or database of its own (or closes
# only its own vhost's connections), so they are kept apart from the many, not from
# each other (2 at a time: 2 min 21 s here, against 3 min 41 s one at a time).
# The many are shared by work stealing: a worker that runs out takes tests queued for
# the other, so one slow test late in the run (the documented commands take 3.5 min on
# a slow machine) does not leave a core idle (2026-12-07, on a machine where make test
# took 22 min: 15 min 42 s against 16 min 25 s for the same tests, one run each).
TEST_WORKERS ?= 2
SERIAL_WORKERS ?= 2

test: $(STAMP) $(OPENAPI_STAMP) system-deps broker-check lint
	@scripts/ensure-broker-plugins.sh
	$(BIN)/pytest -m "not serial" -q -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal
	$(BIN)/pytest -m serial -q -p no:cacheprovider -n $(SERIAL_WORKERS); rc=$$?; [ $$rc -eq 0 -o $$rc -eq 5 ]

test-fast: $(STAMP)
	$(BIN)/pytest -m "not integration and not serial" -q -n $(TEST_WORKERS)

bench: $(STAMP) broker-check
	$(BIN)/python -m bench.run

fuzz: $(STAMP)
	CAFGW_FUZZ_SECONDS=$${CAFGW_FUZZ_SECONDS:-300} $(BIN)/pytest -m fuzz -q

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
