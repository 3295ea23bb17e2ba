# Two commands: `make demo` and `make test`. Everything else is a helper they use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test lint typecheck matrix bench docs clean

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.demo-installed: $(VENV)/bin/activate pyproject.toml
	$(PIP) install --quiet -e ".[demo]"
	touch $@

$(VENV)/.dev-installed: $(VENV)/bin/activate pyproject.toml
	$(PIP) install --quiet -e ".[dev,demo,bench]"
	touch $@

# The demo order service on http://127.0.0.1:8000/ (see demo_project/README.md). In another
# shell: `.venv/bin/python manage.py demo_traffic --seconds 60`. Access logs are off so the
# breaker transitions stand out; the state of the service is on the admin's dashboard.
demo: $(VENV)/.demo-installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo_setup
	$(PY) -m uvicorn demo_project.asgi:application --host 127.0.0.1 --port 8000 --no-access-log --lifespan off

# Branch coverage of the package, with a floor; `make test COVERAGE=` runs without it
# (a subset of the tests cannot reach the floor).
COVERAGE ?= --cov=resilience_django --cov-report=term:skip-covered --cov-fail-under=90

test: $(VENV)/.dev-installed
	PY=$(PY) scripts/run-tests.sh $(COVERAGE) $(PYTEST_ARGS)

# lint-imports: the core knows no Django ([tool.importlinter] in pyproject.toml).
lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: $(VENV)/.dev-installed
	$(VENV)/bin/mypy resilience_django

# Django 5.2 LTS on 3.11 and 3.12, the newest Django on 3.13 (pyenv interpreters).
matrix: $(VENV)/.dev-installed
	$(VENV)/bin/nox

bench: $(VENV)/.dev-installed
	$(PY) benchmarks/run_all.py

docs: $(VENV)/.dev-installed
	$(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) .nox build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
