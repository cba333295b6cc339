# Interlude: `make demo` sets up everything and serves; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
# The real catalog for the demo, when the MovieLens files are beside the repository.
MOVIELENS_PATH ?= $(wildcard ../shared/data/ml-100k)

.PHONY: install demo serve test lint format stack bench clean

REQUIREMENTS := -r requirements/base.txt -r requirements/dev.txt
UV_VERSION := 0.13.9

# uv installs the pinned set in seconds where pip takes minutes; pip does it when uv cannot be
# had or cannot reach an index (pip also reads the machine's own index settings).
$(INSTALLED): requirements/base.txt requirements/dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	( $(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION) \
		&& $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python $(REQUIREMENTS) ) \
		|| $(BIN)/pip install --quiet --disable-pip-version-check $(REQUIREMENTS)
	touch $(INSTALLED)

install: $(INSTALLED)

# Three days of simulated history for this many viewers a day (more: richer models, longer;
# at 600 the first engagement candidate passed the promotion rules in one run of two, at 900 in
# each of the three runs measured, and so did the CTR candidate).
DEMO_VIEWERS ?= 900
DEMO_LOGINS := .demo-logins.txt
# While the demo serves, a simulated audience of this many viewers at once watches through the
# API, so the dashboards move; DEMO_LIVE=0 serves without it.
DEMO_LIVE ?= 1
DEMO_AUDIENCE ?= 600

# When make began (evaluated once, as make reads this file): setup_demo's summary counts the
# install from here.
MAKE_STARTED := $(shell date +%s.%N)

# One process sets everything up (setup_demo: migrate, seed_demo, simulate_traffic, rollup,
# train_models), so Django and the models load once, and it writes the project's bytecode
# (PYTHONDONTWRITEBYTECODE may be set) for the three served processes, which start together.
# No collectstatic: with DEBUG (the demo's default) WhiteNoise serves from the app folders.
demo: install
	PYTHONDONTWRITEBYTECODE= MOVIELENS_PATH="$(MOVIELENS_PATH)" $(BIN)/python manage.py setup_demo \
		--days 3 --viewers $(DEMO_VIEWERS) --seed 7 \
		--since $(MAKE_STARTED) --logins-out $(DEMO_LOGINS)
	@echo "Interlude is starting on http://$(HOST):$(PORT)/ — log in with a login above."
	DEMO_HOST=$(HOST) DEMO_PORT=$(PORT) DEMO_AUDIENCE=$(DEMO_AUDIENCE) PATH="$(CURDIR)/$(BIN):$$PATH" \
		$(BIN)/honcho start -f Procfile.demo \
		-c audience=$(if $(filter 0 false no off,$(DEMO_LIVE)),0,1)

serve: install
	$(BIN)/uvicorn config.asgi:application --host $(HOST) --port $(PORT) --reload --lifespan off

# Two processes (pytest-xdist), one per core of the 2-core machine; TEST_WORKERS=0 runs in one.
# Each worker has its own test database and Redis database (tests/conftest.py).
TEST_WORKERS ?= 2

# Bytecode is written even where PYTHONDONTWRITEBYTECODE is set: each worker and each server
# a test starts would otherwise compile every module again (about 3 s of CPU a process).
test: install
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

# ruff, the import contracts of DESIGN.md's layers (pyproject.toml), and mypy.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy $$(git ls-files '*/services.py' '*/selectors.py' '*/services/*.py' '*/selectors/*.py')

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Web, worker and beat on this host, against PostgreSQL and Redis that already run.
stack: install
	@test -n "$$DATABASE_URL" && test -n "$$REDIS_URL" || \
		{ echo "make stack needs DATABASE_URL and REDIS_URL (see .env.example)"; exit 1; }
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start -f Procfile -p $(PORT)

bench: install
	@for script in bench/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) staticfiles db.sqlite3* db.counters.sqlite3* $(DEMO_LOGINS) .pytest_cache .mypy_cache .ruff_cache
