# The two commands a newcomer needs: `make up` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install up test lint check-types check-imports pytest lock clean

$(BIN)/pinpoint: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "pinpoint needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/pinpoint

## Start PostgreSQL, NATS and every service on this machine, with the demo province loaded.
up: install
	$(BIN)/pinpoint up --demo

## Lint, type-check, check the import contracts and run every test against real servers.
test: install lint check-types check-imports pytest

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

check-types:
	$(BIN)/mypy

check-imports:
	$(BIN)/lint-imports

pytest:
	$(BIN)/pytest

## Pin every runtime dependency, with hashes, for the container image (deploy/requirements.lock).
lock: install
	$(BIN)/uv pip compile pyproject.toml deploy/requirements.in --universal --python-version 3.11 \
		--generate-hashes --custom-compile-command "make lock" --output-file deploy/requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
