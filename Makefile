# Two commands do everything on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: setup browser slurm demo test test-fast lint bench clean

setup: $(STAMP)

# Re-run the install only when the package metadata changes, so `make setup` is quick when done.
$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet $(TORCH)
	$(VENV)/bin/pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The report test screenshots report.html in headless Chromium (Debian's package). Installed when
# missing and we can (root with apt-get); otherwise that one test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "chromium install failed: the report screenshot test will skip"; \
	  else echo "chromium not installed (needs root + apt-get): the report screenshot test will skip"; fi; }

# The Slurm launcher's tests start a throw-away one-node cluster of this machine (Debian's Slurm and
# munge). Installed when missing and we can (root with apt-get); otherwise those tests skip and say why.
SLURM_PACKAGES := slurmctld slurmd slurm-client munge
slurm:
	@command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 \
	  && command -v sbatch >/dev/null 2>&1 && command -v munged >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SLURM_PACKAGES) >/dev/null) \
	      || echo "Slurm install failed: the Slurm launcher tests will skip"; \
	  else echo "Slurm not installed (needs root + apt-get): the Slurm launcher tests will skip"; fi; }

demo: setup
	$(VENV)/bin/scratchlab demo --out runs/demo

test: setup browser slurm
	$(VENV)/bin/ruff check scratchlab tests benchmarks
	$(VENV)/bin/ruff format --check scratchlab tests benchmarks
	$(VENV)/bin/python -m pytest -q

# The suite without the tests marked `slow` (each over ~5 s on 2 cores: multi-process, resume, studies).
test-fast: setup
	$(VENV)/bin/ruff check scratchlab tests benchmarks
	$(VENV)/bin/ruff format --check scratchlab tests benchmarks
	$(VENV)/bin/python -m pytest -q -m "not slow"

# Regenerates the measured part of BENCHMARKS.md (between its `make bench` markers; the rest is kept).
# ARGS passes options through, e.g. `make bench ARGS="--only loop --repeats 5"`.
bench: setup
	$(VENV)/bin/python benchmarks/run.py $(ARGS)

lint: setup
	$(VENV)/bin/ruff check scratchlab tests benchmarks
	$(VENV)/bin/ruff format --check scratchlab tests benchmarks

clean:
	rm -rf runs .pytest_cache
