# Set-up and everyday commands. Every target installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
# The browser tests drive Debian's chromium; Playwright never downloads a browser of its own.
CHROMIUM := /usr/bin/chromium
# The reliability tests start private Redis servers of their own (to stop and restart them).
REDIS_SERVER := /usr/bin/redis-server
# The load-balancer test runs Debian's HAProxy with deploy/haproxy/haproxy.cfg.
HAPROXY := /usr/sbin/haproxy

.PHONY: run test lint bench reliability install image-check docker-ready

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(DEV_STAMP): requirements-dev.txt $(RUNTIME_STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(CHROMIUM):
	command -v chromium >/dev/null || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -q && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends chromium; }

$(REDIS_SERVER):
	command -v redis-server >/dev/null || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -q && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends redis-server; }

$(HAPROXY):
	command -v haproxy >/dev/null || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -q && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends haproxy; }

install: $(RUNTIME_STAMP)

## make run: install, migrate, make sure the admin account exists, serve on $HOST:$PORT
run: $(RUNTIME_STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/python manage.py ensure_admin
	$(BIN)/python manage.py serve

## make test: install test needs (Debian's chromium too), lint, run the whole suite
test: $(DEV_STAMP) $(CHROMIUM) $(REDIS_SERVER) $(HAPROXY) docker-ready lint
	$(BIN)/python -m pytest

# The image test builds and runs the Dockerfile: Debian's docker.io and debootstrap, dockerd up.
# Never stops `make test`: where Docker cannot be had (no root, no mirror, no cgroups) it says so
# and the image test skips; it waits for dockerd only right after starting it.
docker-ready:
	deploy/image/ensure-docker.sh

## make image-check: build the image on a local Debian base, start it against the local Postgres
## and Redis, one speech request through HAProxy (tests/deploy/test_image.py)
image-check: $(DEV_STAMP) $(HAPROXY) docker-ready
	$(BIN)/python -m pytest -p no:cacheprovider -s tests/deploy/test_image.py

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## make bench: the benchmarks in benchmarks/, one table each (CSM twice: CSM-1B's depth at a tiny
## width in float32, where a frame costs framework overhead, the cost that bounds a GPU; then the
## real size in the engine's own precision)
bench: $(DEV_STAMP)
	$(BIN)/python benchmarks/bench_api.py
	$(BIN)/python benchmarks/bench_csm.py --size overhead --dtype float32 --batches 1,16
	$(BIN)/python benchmarks/bench_csm.py

## make reliability: 50 clients for 60 s against a server and a Celery worker (Postgres and Redis
## from RELIABILITY_DATABASE_URL and RELIABILITY_REDIS_URL, made afresh), then the fault and
## hostile-input tests; one table
reliability: $(DEV_STAMP) $(REDIS_SERVER)
	$(BIN)/python reliability/run.py
