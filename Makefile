# The two commands a newcomer needs: `make signoff` (the main job) and `make test`.
# Everything else here is what they call.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SYSTEM_PACKAGES := redis-server pgbouncer
# `make up SEED=none` starts the unit without loading data; SEED=ci loads the small profile.
SEED ?= default
# `make signoff SIZE=ci SIGNOFF_ARGS="--use region=us-east-1 -- -k pooling"`: the scenario size and any other
# `harness signoff` arguments. make reports the sign-off's exit code as "Error N" (3 WARN, 4 FAIL, 5 BROKEN).
SIZE ?= signoff
SIGNOFF_ARGS ?=

.PHONY: install system-packages up down status test unit lint signoff signoff-ci bench-stack bench-ports locust bench-locust docs docs-build clean

install: system-packages $(VENV)/.installed

# Debian's redis-server and pgbouncer: installed when run as root, otherwise named.
system-packages:
	@missing=""; \
	for pkg in $(SYSTEM_PACKAGES); do \
	  command -v $$pkg >/dev/null 2>&1 || [ -x /usr/sbin/$$pkg ] || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else \
	    echo "missing Debian packages:$$missing. Install them with: sudo apt-get install$$missing" >&2; exit 1; \
	  fi; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

up: install
	$(BIN)/harness up
	@# The functions log in as the role the seed creates, so they are deployed after it.
	@if [ "$(SEED)" != none ]; then $(BIN)/harness seed --profile $(SEED) && $(BIN)/harness deploy; fi

down:
	@if [ -x $(BIN)/harness ]; then $(BIN)/harness down; else echo "nothing to stop (no $(VENV))"; fi

status: install
	$(BIN)/harness status

test: install
	$(BIN)/pytest

unit: install
	$(BIN)/pytest tests/unit

signoff: install
	$(BIN)/harness signoff --size $(SIZE) $(SIGNOFF_ARGS)

signoff-ci: install
	$(BIN)/harness signoff --size ci $(SIGNOFF_ARGS)

# What CI checks before the tests: lint, formatting, and types (strictness in pyproject.toml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench-stack: install
	$(BIN)/python benchmarks/stack_bench.py

# What the compose backend's published ports add to each request (needs `harness up --backend compose`).
bench-ports: install
	$(BIN)/python benchmarks/published_port_bench.py

# A headless Locust run against the unit, ending with the thresholds' verdict as its exit code:
# `make locust LOCUSTFILE=cache LOCUST_ARGS="-u 8 -t 2m --shape ramp"`.
LOCUSTFILE ?= vector_search
LOCUST_ARGS ?= -u 8 -r 8 -t 1m
locust: install
	$(BIN)/locust -f locustfiles/$(LOCUSTFILE).py --headless $(LOCUST_ARGS)

bench-locust: install
	$(BIN)/python benchmarks/locust_bench.py

# The documentation site: `make docs` serves it on 127.0.0.1:8000 while you edit, `make docs-build` builds it
# into site/ and fails on any warning (a broken link, a page missing from the nav). Reference pages are generated
# from the code: `python docs/_gen/reference.py --write` after changing a command, a setting or a metric.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve -a 127.0.0.1:8000

docs-build: install
	$(BIN)/python docs/_gen/reference.py --check
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean: down
	rm -rf $(VENV) .harness reports site
