# Every target creates .venv and installs agentnet (with the test tools) on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SCENARIO ?= scenarios/consult.yaml
# ag2 1.2.1 (a test-time peer, not an agentnet dependency): its WebSocket client needs websockets<17,
# agentnet needs 17, so real ag2 agents run from their own environment, made on first use.
AG2_VENV  := .venv-ag2
AG2_STAMP := $(AG2_VENV)/.stamp

.PHONY: up test bench lint fmt clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "agentnet needs Python 3.11+, found " + sys.version.split()[0]'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing agentnet into $(VENV) ..."
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

$(AG2_STAMP):
	@test -x $(AG2_VENV)/bin/python || $(PYTHON) -m venv $(AG2_VENV)
	@echo "installing ag2 1.2.1 into $(AG2_VENV) ..."
	@$(AG2_VENV)/bin/python -m pip install -q 'ag2==1.2.1' 'websockets>=14,<17'
	@touch $(AG2_STAMP)

up: $(STAMP) $(if $(findstring ag2,$(SCENARIO)),$(AG2_STAMP))  ## set up, then run a scenario with the dashboard
	$(BIN)/agentnet up $(SCENARIO)

test: $(STAMP) $(AG2_STAMP)  ## set up, then run the whole test suite
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
