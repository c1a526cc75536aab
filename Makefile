# Two commands on a fresh machine: `make run` and `make test`; `make serve` for production.
PYTHON ?= python3
# Two test processes: the suite is mostly waiting on PostgreSQL, live servers and Chromium.
PYTEST_ARGS ?= -n 2
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run serve test lint install browser shell clean tour

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Everything up on demo data: PostgreSQL, Redis, web, Celery worker and beat.
run: install
	$(BIN)/python -m config.launcher run

## Production: DEBUG=0 under gunicorn, no demo data (SERVE_DEMO=1 adds it). Needs a real
## SECRET_KEY and FIELD_ENCRYPTION_KEYS. ROLE=web|worker|beat|migrate runs one role alone.
ROLE ?= all
serve: install
	$(BIN)/python -m config.launcher serve $(ROLE)

## Lint, then the whole suite on PostgreSQL (embedded unless DATABASE_URL is set).
test: install browser
	$(BIN)/ruff check .
	$(BIN)/python -m config.launcher exec -- $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

## The README's tour: screenshots of the demo pages, written to docs/tour/.
tour: install browser
	$(BIN)/python -m config.launcher exec -- $(BIN)/python docs/tour.py

## A Django shell against the same database `make run` uses.
shell: install
	$(BIN)/python -m config.launcher exec -- $(BIN)/python manage.py shell

## Debian's Chromium for the browser tests: installed when missing and we are root.
browser:
	@if [ -n "$$CHROMIUM_PATH" ] || command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
	  echo "Chromium is missing: run 'sudo apt-get install chromium' (or set CHROMIUM_PATH)."; \
	  echo "Until then the browser tests are skipped."; \
	fi

clean:
	rm -rf $(VENV) var
