# Every target creates .venv on first use: `make up` installs agentnet alone, `make test` (and the
# others) add the test tools. `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
RUN_STAMP := $(VENV)/.runtime-stamp
PG_STAMP := $(VENV)/.postgres-stamp
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# make up SCENARIO=scenarios/chaos.yaml runs another scenario
SCENARIO ?= scenarios/consult.yaml
# ag2 1.2.1 (a test-time peer, not an agentnet dependency): its WebSocket client needs websockets<17,
# agentnet needs 17, so real ag2 agents run from their own environment, made on first use.
AG2_VENV  := .venv-ag2
AG2_STAMP := $(AG2_VENV)/.stamp

AUTOGEN_VENV  := .venv-autogen
AUTOGEN_STAMP := $(AUTOGEN_VENV)/.stamp

.PHONY: help up test bench lint fmt clean protos

help:                   ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z]+):.*## /  make \1\t/' | expand -t 22
	@echo "  (make up SCENARIO=scenarios/chaos.yaml runs another scenario)"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "agentnet needs Python 3.11+, found " + sys.version.split()[0]'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing agentnet into $(VENV) ..."
	@$(BIN)/python -m pip install -q --upgrade pip
	@PYTHONWARNINGS=ignore $(BIN)/python -m pip install -q -e '.[dev,autogen]'
	@touch $(STAMP)

# `make up` needs agentnet alone (no test tools); a full install (make test) counts too.
# PYTHONWARNINGS=ignore: setuptools' build backend prints a 10-line "Editable installation" banner
# (folders named like the package) on every editable install; it is no news for this flat layout.
$(RUN_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "agentnet needs Python 3.11+, found " + sys.version.split()[0]'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if [ ! -f $(STAMP) ] || [ pyproject.toml -nt $(STAMP) ]; then \
		echo "installing agentnet into $(VENV) ..."; \
		$(BIN)/python -m pip install -q --upgrade pip; \
		PYTHONWARNINGS=ignore $(BIN)/python -m pip install -q -e .; fi
	@touch $(RUN_STAMP)

$(AG2_STAMP):
	@test -x $(AG2_VENV)/bin/python || $(PYTHON) -m venv $(AG2_VENV)
	@echo "installing ag2 1.2.1 into $(AG2_VENV) ..."
	@$(AG2_VENV)/bin/python -m pip install -q 'ag2==1.2.1' 'websockets>=14,<17'
	@touch $(AG2_STAMP)

# AutoGen's real workers (a test-time peer, never imported by agentnet): the exact release the gateway speaks.
$(AUTOGEN_STAMP):
	@test -x $(AUTOGEN_VENV)/bin/python || $(PYTHON) -m venv $(AUTOGEN_VENV)
	@echo "installing autogen-ext[grpc]==0.7.5 into $(AUTOGEN_VENV) ..."
	@$(AUTOGEN_VENV)/bin/python -m pip install -q 'autogen-core==0.7.5' 'autogen-ext[grpc]==0.7.5'
	@touch $(AUTOGEN_STAMP)

# Regenerate the AutoGen gateway's protobuf code from agentnet/gateway/autogen/protos/*.proto.
protos: $(STAMP)        ## regenerate the AutoGen gateway's protobuf code
	@$(BIN)/python -m pip install -q 'grpcio-tools==1.70.0'
	@sh scripts/gen_autogen_protos.sh $(BIN)/python

up: $(RUN_STAMP) $(if $(findstring autogen,$(SCENARIO)),$(STAMP) $(AUTOGEN_STAMP)) $(if $(findstring ag2,$(SCENARIO)),$(AG2_STAMP))  ## set up, then run a scenario (SCENARIO=..., default consult) with the dashboard
	$(BIN)/agentnet up $(SCENARIO)

# The PostgreSQL store's tests start their own server from Debian's binaries: install them once if missing.
$(PG_STAMP): $(STAMP)
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { \
		echo "installing PostgreSQL 15 (server binaries for the postgresql store tests) ..."; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql-15 >/dev/null; }
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null
	@touch $@

test: $(STAMP) $(PG_STAMP) $(AUTOGEN_STAMP) $(AG2_STAMP)  ## set up, then run the whole test suite
	$(BIN)/python -m pytest -q

bench: $(STAMP)         ## throughput and latency benchmarks (memory and sqlite stores)
	$(BIN)/agentnet bench throughput --store memory
	$(BIN)/agentnet bench throughput --store sqlite

lint: $(STAMP)          ## ruff and the import layering contract
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

fmt: $(STAMP)           ## format and autofix with ruff
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:                  ## remove .venv and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache .agentnet build *.egg-info
