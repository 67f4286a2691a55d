# keepa-deals: `make run` starts the service, `make test` proves it.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LINT_PATHS := $(wildcard keepa_deals tests bench Diagnostics celery_config.py)

.PHONY: install redis lint typecheck test pytest run simulator bench clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

# The tests start their own redis-server on a free port; this only makes sure the
# binary exists.
redis:
	@bash scripts/ensure-redis-server.sh

lint: install
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

typecheck: install
	$(VENV)/bin/mypy
	MYPYPATH=Diagnostics $(VENV)/bin/mypy --strict $(wildcard Diagnostics/*.py)

# pytest exits 5 when it collected nothing: that must never count as a pass.
pytest: install redis
	@set +e; $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

test: lint typecheck pytest

run: install redis
	$(PY) -m keepa_deals.cli run

simulator: install
	$(PY) -m keepa_deals.cli simulator

# Benchmarks are measurements, not tests: results go in docs/benchmarks.md.
bench: install redis
	$(PY) bench/token_manager.py
	$(PY) bench/harvest_cost.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
