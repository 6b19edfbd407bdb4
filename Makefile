# The two commands a newcomer needs: `make signoff` (the main job) and `make test`.
# Everything else here is what they call.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SYSTEM_PACKAGES := redis-server pgbouncer

.PHONY: install system-packages up down status env test unit lint bench-stack clean

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

down:
	@if [ -x $(BIN)/harness ]; then $(BIN)/harness down; else echo "nothing to stop (no $(VENV))"; fi

status: install
	$(BIN)/harness status

test: install
	$(BIN)/pytest

unit: install
	$(BIN)/pytest tests/unit

lint: install
	$(BIN)/ruff check .

bench-stack: install
	$(BIN)/python benchmarks/stack_bench.py

clean: down
	rm -rf $(VENV) .harness reports
