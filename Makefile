# Every target creates .venv and installs agentnet (with the test tools) on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PG_STAMP := $(VENV)/.postgres-stamp
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SCENARIO ?= scenarios/consult.yaml

.PHONY: up test bench lint fmt clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "agentnet needs Python 3.11+, found " + sys.version.split()[0]'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing agentnet into $(VENV) ..."
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

up: $(STAMP)            ## set up, then run the consult scenario with the dashboard
	$(BIN)/agentnet up $(SCENARIO)

# The PostgreSQL store's tests start their own server from Debian's binaries: install them once if missing.
$(PG_STAMP): $(STAMP)
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { \
		echo "installing PostgreSQL 15 (server binaries for the postgresql store tests) ..."; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql-15 >/dev/null; }
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null
	@touch $@

test: $(STAMP) $(PG_STAMP)  ## set up, then run the whole test suite
	$(BIN)/python -m pytest -q

bench: $(STAMP)         ## throughput and latency benchmarks (memory and sqlite stores)
	$(BIN)/agentnet bench throughput --store memory
	$(BIN)/agentnet bench throughput --store sqlite

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .agentnet build *.egg-info
