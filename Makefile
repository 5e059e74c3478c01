VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast test-slow lint format type-check bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh

demo: setup  ## real MNIST, a few minutes on 2 cores -> report/
	$(BIN)/robustmi demo --out report

test: setup  ## full suite (slow tests excluded; see test-slow)
	$(BIN)/pytest -q

test-fast: setup
	$(BIN)/pytest -q -x -m "not slow"

test-slow: setup
	$(BIN)/pytest -q --runslow

lint: setup
	$(BIN)/ruff check src tests benchmarks

format: setup
	$(BIN)/ruff format src tests benchmarks

type-check: setup
	$(BIN)/pip install -q mypy && $(BIN)/mypy src/robustmi

bench: setup
	$(BIN)/python benchmarks/train_step.py

clean:
	rm -rf $(VENV) report
