# The two commands a user needs: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test lint fmt bench soak fuzz clean help

help:
	@echo "make run    serve on :8080 (embedded PostgreSQL in ./.m3w unless DATABASE_URL is set)"
	@echo "make test   run the test suite against a real PostgreSQL"
	@echo "make lint   ruff check + format check"
	@echo "make fmt    format the code"
	@echo "make bench  ingestion benchmark (prints figures; see README)"
	@echo "make soak   10-minute soak: RSS per worker, rows vs 2xx (not in CI; SOAK_ARGS)"
	@echo "make fuzz   schemathesis against the served OpenAPI description (FUZZ_ARGS)"

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

soak: $(INSTALLED)
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

fuzz: $(INSTALLED)
	$(BIN)/python -m bench.fuzz $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
