# Studio Avatar: `make demo` produces an avatar from the embedded default capture,
# `make test` runs the test suite. Both create .venv from the pinned requirements
# when it is missing or the requirements changed (idempotent).

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CLI    := $(BIN)/studio-avatar
PYTEST_ARGS ?=

.PHONY: demo test venv extension clean

demo: venv
	$(CLI) demo -o demo_out

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

venv: $(STAMP) $(CLI)

$(STAMP): requirements.txt requirements-worker.txt requirements-nodeps.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; Studio Avatar needs Python 3.11 (Blender 4.5's Python). Set PYTHON=/path/to/python3.11" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	$(BIN)/python -m pip install --disable-pip-version-check -q --no-deps -r requirements-nodeps.txt
	touch $@

$(CLI): $(STAMP) tools/install_cli.py core/launcher.py
	$(BIN)/python tools/install_cli.py $@

extension: venv
	$(BIN)/python tools/build_extension.py dist

clean:
	rm -rf dist demo_out .pytest_cache
