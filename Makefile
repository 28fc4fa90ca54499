# One command each: `make run` runs the bot, `make test` runs the whole test suite.
# Both create a local virtual environment (.venv) on first use; only Python 3.11+ is needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/news-notifier run

test: $(STAMP)
	$(BIN)/ruff check bot tests bench
	$(BIN)/python -m pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check bot tests bench
	$(BIN)/ruff format --check bot tests bench

# Every bench exits 1 when a goal or a correctness check it prints fails (bench/common.py,
# Verdicts): all of them run, then the target fails if any did.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	failed=""; for b in ingest poll match fanout digest; do \
		$(BIN)/python -m bench.$$b || failed="$$failed $$b"; done; \
	if [ -n "$$failed" ]; then echo "benches that failed a goal or a check:$$failed"; exit 1; fi

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
