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

.PHONY: install system-packages up down status test unit lint signoff signoff-ci signoff-compose-ci bench-stack bench-ports locust bench-locust docs docs-build clean

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

# CI's gate on the compose backend (.ci/run runs it after the tests): the ci-size sign-off on containers passes
# on PASS and WARN and fails on FAIL, BROKEN, a stack that did not start, or a run past COMPOSE_CI_TIMEOUT_S.
# It runs in a state directory of its own (so it never meets a stack you keep running), which is removed with
# the stack, its network and its volumes whatever the verdict; the reports stay under COMPOSE_CI_REPORTS.
COMPOSE_CI_REPORTS ?= reports/compose-ci
COMPOSE_CI_TIMEOUT_S ?= 900
signoff-compose-ci: install
	@state=$$(mktemp -d "$${TMPDIR:-/tmp}/dbunit-compose-ci.XXXXXX"); \
	trap 'HARNESS_STATE_DIR="$$state" $(BIN)/harness down --backend compose --purge >/dev/null \
	  || echo "signoff-compose-ci: removing the stack of $$state failed" >&2; rm -rf "$$state"' EXIT; \
	HARNESS_STATE_DIR="$$state" timeout -k 30 $(COMPOSE_CI_TIMEOUT_S) \
	  $(BIN)/harness signoff --size ci --backend compose --reports $(COMPOSE_CI_REPORTS) $(SIGNOFF_ARGS); \
	code=$$?; \
	echo "compose sign-off: exit $$code; reports in $(abspath $(COMPOSE_CI_REPORTS))/$$(ls -t $(COMPOSE_CI_REPORTS) 2>/dev/null | head -1)"; \
	case $$code in \
	  0|3) exit 0 ;; \
	  124|137) echo "compose sign-off: stopped after $(COMPOSE_CI_TIMEOUT_S) s (COMPOSE_CI_TIMEOUT_S)" >&2; exit 1 ;; \
	  *) exit 1 ;; \
	esac

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
