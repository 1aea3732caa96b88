# Developer and CI entry points. Everything runs from the project's own .venv.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# Stamp inside the venv: re-install only when pyproject.toml changes (or the venv is gone).
STAMP  := $(VENV)/.installed
SRC    := domain workflows activities api chuangzheng worker.py

.PHONY: venv assets test test-random test-nocache lint fmt run simulate bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml deploy/system-packages.sh
	./deploy/system-packages.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# Bytecode now: servers run with PYTHONDONTWRITEBYTECODE would otherwise compile the
	# workflow modules again for every workflow the sandbox imports them for.
	$(BIN)/python -m compileall -q $(SRC) migrations
	touch $(STAMP)

# The dashboard's browser assets come from the npm registry (ui/package-lock.json), never a CDN.
VENDOR := api/ui/static/vendor
assets: $(VENDOR)/echarts.min.js

$(VENDOR)/echarts.min.js: ui/package.json ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund
	mkdir -p $(VENDOR)
	cp ui/node_modules/echarts/dist/echarts.min.js $@

# No -n: the Temporal servers are session and module fixtures of one process. Then the workflow
# suite once more with every workflow task replayed (test-nocache, below).
test: venv assets
	$(BIN)/pytest -q -p no:cacheprovider
	$(NOCACHE_PYTEST)

# The same suite in a random order (pytest-randomly prints its seed; repeat an order with
# ARGS="--randomly-seed=N"). No test may rely on another having run before it.
test-random: venv assets
	$(BIN)/pytest -q -p no:cacheprovider -p randomly $(ARGS)

# The workflow suite with every test worker's workflow cache at 0: each workflow task replays
# the whole history (non-determinism a warm cache hides shows here). Part of `make test`: about
# two minutes on a quiet 2-core machine (113 s for 48 tests; 547 s for 59 on one shared by five
# test runs). Nothing is deselected: the two continue-as-new tests once left out failed only on
# the session's shared test server, whose clock other tests' leftovers had stopped or moved;
# each module now has a server of its own and no test leaves anything open (tests/conftest.py;
# docs/reliability.md, "Every workflow task replayed" and "Workflow tests and the time-skipping
# server").
NOCACHE_PYTEST = CZ_TEST_MAX_CACHED_WORKFLOWS=0 $(BIN)/pytest -q -p no:cacheprovider tests/workflows
test-nocache: venv
	$(NOCACHE_PYTEST) $(ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(SRC)

fmt: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Supervises the Temporal dev server, CZ_WORKERS (default 1) workers and the API as processes; the
# console gets the banner and a status line a minute, the logs go to .data/logs/*.log.
run: venv assets
	@$(BIN)/python -m chuangzheng.run

simulate: venv
	$(BIN)/chuangzheng simulate $(ARGS)

# Benchmarks against raw-Temporal baselines in the same run (tables; JSON under
# benchmarks/results/). E.g. make bench ARGS="--only storm --orgs 500" or ARGS="--scale smoke".
bench: venv
	$(BIN)/python -m benchmarks $(ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache test-artifacts
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
