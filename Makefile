# Two commands set everything up: `make app` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 7860

.PHONY: app test test-fast test-long lint-imports install clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# Re-install only when requirements.txt or pyproject.toml changed since the last install.
$(STAMP): requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# The app on http://$(HOST):$(PORT) (`make app PORT=7861`); anything but loopback needs --auth (see README).
app: $(STAMP)
	$(BIN)/python app.py --host $(HOST) --port $(PORT) $(ARGS)

# The import contract (.importlinter: layers, no cycles), then every test. Tests run offline.
lint-imports: $(STAMP)
	$(BIN)/lint-imports --no-cache

test: $(STAMP) lint-imports
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q --durations=25 tests

test-fast: $(STAMP) lint-imports
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow and not long" tests

# The longest campaigns (6 concurrent runs + the app's worker with rebuild and ingest loops), not in make test.
test-long: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m long tests

clean:
	rm -rf $(VENV)
