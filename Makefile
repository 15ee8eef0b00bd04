# Everyday commands. `make run` serves the demo at http://127.0.0.1:8000/.
HOST ?= 127.0.0.1
PORT ?= 8000
VENV := .venv
PY := $(VENV)/bin/python
# The public URL the demo prints and the tokens' issuer, unless set already.
export PLATFORM_URL ?= http://$(HOST):$(PORT)
# The demo lab's relay signs with this secret (a real relay would be configured with it).
export DEMO_RELAY_SECRET ?= demo-relay-secret-for-local-use-only-0123456789

.PHONY: bootstrap run test lint bench services

bootstrap:
	scripts/bootstrap

run: bootstrap
	$(PY) manage.py migrate
	$(PY) manage.py demo
	exec $(VENV)/bin/daphne -b $(HOST) -p $(PORT) config.asgi:application

# TEST_ARGS go on to scripts/test (pytest's arguments, or --allow-empty).
test:
	scripts/test $(TEST_ARGS)

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench:
	scripts/bench

services:
	python3 scripts/services.py env
