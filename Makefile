# The two commands the README shows: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export LITELLM_LOCAL_MODEL_COST_MAP := True

# Much of the suite waits on the gateway processes it starts: two workers (pytest-xdist, one test file
# each at a time) took it from 18 to 13 minutes on the 2-core CI machine. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2

.PHONY: run test install install-dev services lint lock bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip==25.3

$(VENV)/.installed: requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r requirements.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation --config-settings editable_mode=compat -e .
	touch $@

$(VENV)/.installed-dev: requirements-dev.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r requirements-dev.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation --config-settings editable_mode=compat -e .
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

data/demo-moe/config.json: | $(VENV)/.installed
	$(BIN)/bulkhead moe train-demo --out data/demo-moe

run: install data/demo-moe/config.json
	$(BIN)/bulkhead migrate
	$(BIN)/bulkhead serve --bootstrap-demo --host 127.0.0.1 --port 8080

services:
	@bash scripts/services.sh

test: install-dev services
	@bash scripts/browser.sh
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: install-dev
	$(BIN)/ruff check .

lock: $(BIN)/python
	$(BIN)/python scripts/lock.py

bench: install-dev
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
