# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: setup demo test lint clean

setup: $(STAMP)

# Re-run the install only when the package metadata changes, so `make setup` is quick when done.
$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet $(TORCH)
	$(VENV)/bin/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/scratchlab demo --out runs/demo

test: setup
	$(VENV)/bin/ruff check scratchlab tests
	$(VENV)/bin/python -m pytest -q

lint: setup
	$(VENV)/bin/ruff check scratchlab tests

clean:
	rm -rf runs .pytest_cache
