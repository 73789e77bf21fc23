# make demo: steal a logistic regression trained on Adult, end to end, then assess it.
# make test: install what the tests need, lint, type-check, run the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := demo-out
MLSERVER_VENV := .venv-mlserver

.PHONY: demo test lint typecheck bench bench-art docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.core

demo: $(VENV)/.core
	@mkdir -p $(DEMO) && rm -f $(DEMO)/queries.sqlite*
	$(BIN)/stealml train --data adult-income --model logreg --seed 0 --out $(DEMO)/target.skops
	$(BIN)/stealml extract --target $(DEMO)/target.skops --attack equation-solving \
		--data adult-income --price 0.0001 --log $(DEMO)/queries.sqlite \
		--out $(DEMO)/stolen.skops
	$(BIN)/stealml assess --target $(DEMO)/target.skops --budget-dollars 0.1 \
		--attack equation-solving --attack lowd-meek --attack retrain-uniform \
		--out $(DEMO)/assessment

# MLServer (for the integration test and the throughput benchmark) pins an older FastAPI:
# it gets a virtual environment of its own, made once.
$(MLSERVER_VENV)/.stealml-ready: | $(VENV)/.core
	$(BIN)/python -c "from pathlib import Path; from stealml.server.mlserver import \
		ensure_venv; ensure_venv(Path('$(MLSERVER_VENV)'))"

lint: $(VENV)/.test
	$(BIN)/ruff check src tests benchmarks

typecheck: $(VENV)/.test
	$(BIN)/mypy

test: lint typecheck $(MLSERVER_VENV)/.stealml-ready
	$(BIN)/python -m pytest -q

# docs/api.md from the public API's docstrings, and the page list of docs/index.md
docs: $(VENV)/.core
	$(BIN)/python docs/build_api.py

bench: $(VENV)/.core $(MLSERVER_VENV)/.stealml-ready
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

# IBM ART, for benchmarks/art_comparison.py only, lives in .venv-art (made by the script).
bench-art: $(VENV)/.core
	$(BIN)/python benchmarks/art_comparison.py

clean:
	rm -rf $(VENV) $(MLSERVER_VENV) .venv-art $(DEMO) .mypy_cache .ruff_cache .pytest_cache
