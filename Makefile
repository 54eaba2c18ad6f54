# TaskOps Console: `make run` brings the whole stack up, `make test` runs the test suite.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(VENV)/bin/pip

.PHONY: run run-prod test bench install install-test clean help

help:
	@echo "make run        start Redis (if none answers), worker, beat and the web console on :8000"
	@echo "make run-prod   the same with gunicorn + whitenoise (see README: production profile)"
	@echo "make test       install test requirements and run the suite (SQLite, then PostgreSQL if reachable)"
	@echo "make bench      run the benchmarks in bench/ (installs Flower; the run list bench loads 1M runs into PostgreSQL)"

$(PY):
	$(PYTHON) -c 'import sys; sys.exit("TaskOps Console needs Python 3.11+") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(PY)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-test: requirements-test.txt $(VENV)/.installed
	$(PIP) install --quiet -r requirements-test.txt
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(PY) scripts/devstack.py

run-prod: install
	$(PY) scripts/devstack.py --prod

test: install-test
	$(PY) scripts/run_tests.py $(PYTEST_ARGS)

# The run list bench loads TASKOPS_BENCH_ROWS runs (default 1,000,000) into PostgreSQL once and
# keeps them for the next run; it skips with a message when no PostgreSQL server answers.
TASKOPS_BENCH_ROWS ?= 1000000

bench: install-test
	$(PIP) install --quiet -r bench/requirements.txt
	$(PY) bench/queue_depth.py
	$(PY) bench/dashboard_vs_flower.py
	$(PY) bench/frozen_broker.py
	$(PY) bench/run_list.py --rows $(TASKOPS_BENCH_ROWS)
	$(PY) bench/bulk_retry.py
	$(PY) bench/schedule_list.py

clean:
	rm -rf $(VENV) var .pytest_cache
