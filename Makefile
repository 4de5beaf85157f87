# The two commands a user needs: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test lint fmt bench clean help

help:
	@echo "make run    serve on :8080 (embedded PostgreSQL in ./.m3w unless DATABASE_URL is set)"
	@echo "make test   run the test suite against a real PostgreSQL"
	@echo "make lint   ruff check + format check"
	@echo "make fmt    format the code"
	@echo "make bench  ingestion benchmark (prints figures; see README)"

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $@

run: $(INSTALLED)
	$(BIN)/m3w serve

test: $(INSTALLED)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(INSTALLED)
	$(BIN)/python -m bench.ingest $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
