# keepa-deals: `make run` starts the service, `make test` proves it.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LINT_PATHS := $(wildcard keepa_deals tests bench Diagnostics celery_config.py)

.PHONY: install redis chromium lint lint-imports typecheck test pytest run simulator bench clean

# A venv without pip (left by a failed `venv`) is made again. Fresh Debian lacks
# ensurepip (package python3.X-venv), without which `python3 -m venv` fails: as root
# with apt-get it is installed (one apt-get update) and venv retried; otherwise the
# message names the package.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@if ! $(PY) -m pip --version >/dev/null 2>&1; then \
	  echo "creating the virtualenv $(VENV) with $(PYTHON)"; \
	  if ! $(PYTHON) -m venv --clear $(VENV); then \
	    $(PYTHON) -c 'import ensurepip' 2>/dev/null && exit 1; \
	    pkg=$$($(PYTHON) -c 'import sys; print("python%d.%d-venv" % sys.version_info[:2])'); \
	    if [ "$$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
	      echo "$(PYTHON) has no ensurepip, so it cannot create $(VENV): install Debian's" \
	        "$$pkg package (sudo apt-get install $$pkg) and retry" >&2; \
	      exit 1; \
	    fi; \
	    echo "$(PYTHON) has no ensurepip: installing Debian's $$pkg package" >&2; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq || exit 1; \
	    apt-get install -y -qq "$$pkg" >/dev/null || \
	      apt-get install -y -qq python3-venv >/dev/null || exit 1; \
	    $(PYTHON) -m venv --clear $(VENV) || exit 1; \
	  fi; \
	fi
	@echo "installing the pinned requirements into $(VENV)"
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -r requirements-dev.txt
	@$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

# The tests start their own redis-server on a free port; this only makes sure the
# binary exists. `run` does not need it: `keepa-deals run` uses REDIS_URL when it
# answers, and installs the binary only when it must start a local server.
redis:
	@bash scripts/ensure-redis-server.sh

# The dashboard's browser tests drive Debian's chromium (Playwright never downloads one).
chromium:
	@bash scripts/ensure-chromium.sh

lint: install
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(MAKE) --no-print-directory lint-imports

# The import contracts of docs/architecture.md (pyproject.toml, [tool.importlinter]):
# a package importing one above it fails here, naming the chain of imports.
lint-imports: install
	$(VENV)/bin/lint-imports --no-cache

typecheck: install
	$(VENV)/bin/mypy
	MYPYPATH=Diagnostics $(VENV)/bin/mypy --strict $(wildcard Diagnostics/*.py)

# pytest exits 5 when it collected nothing: that must never count as a pass.
pytest: install redis chromium
	@set +e; $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

test: lint typecheck pytest

# Quiet recipe: the command's own first line says whether this is the simulator.
run: install
	@$(PY) -m keepa_deals run

simulator: install
	$(PY) -m keepa_deals simulator

# Benchmarks are measurements, not tests: results go in docs/benchmarks.md.
# Every benchmark (about 35 minutes in all: bench/dashboard.py builds a million deals);
# those with a stated goal exit 1 when they miss it.
bench: install redis
	$(PY) bench/token_manager.py
	$(PY) bench/harvest_cost.py --check
	$(PY) bench/baseline.py --check
	$(PY) bench/scaling.py --check
	$(PY) bench/sqlite_dashboard.py
	$(PY) bench/history_prune.py
	$(PY) bench/dashboard.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
