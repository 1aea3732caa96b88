# Developer and CI entry points. Everything runs from the project's own .venv.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
# Stamp inside the venv: re-install only when pyproject.toml changes (or the venv is gone).
STAMP  := $(VENV)/.installed
SRC    := domain workflows activities api chuangzheng worker.py

.PHONY: venv assets test test-random test-reverse test-nocache lint fmt run simulate bench clean

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

# Two pytest-xdist workers: tests that share an expensive fixture (the API stack on each
# database, the browser's stack, a module's time-skipping server) stay on one worker
# (`xdist_group` in tests/conftest.py, --dist loadgroup); much of the suite waits on servers,
# so two workers overlap those waits on 2 cores (docs/reliability.md, "Suite time": 32 min
# serially, under 15 on two workers). XDIST= runs it serially. Then the workflow suite once
# more with every workflow task replayed (test-nocache, below). The slowest tests are listed
# at the end, to keep the suite within its 15 minutes.
XDIST ?= -n 2 --dist loadgroup
test: venv assets
	$(BIN)/pytest -q -p no:cacheprovider $(XDIST) --durations=15
	$(NOCACHE_PYTEST) $(XDIST) $(NOCACHE_DESELECT)

# The same suite in a random order; the seed is printed first (-q hides pytest-randomly's own
# header line): SEED=N repeats an order. No test may rely on another having run before it.
test-random: venv assets
	@seed=$${SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; \
	echo "random order: make test-random SEED=$$seed repeats it"; \
	$(BIN)/pytest -q -p no:cacheprovider -p randomly --randomly-seed=$$seed $(ARGS)

# The same suite backwards: each test runs before every test it follows in `make test`, so
# one that leans on another's leftovers fails here (issue 13: each test passes alone).
test-reverse: venv assets
	$(BIN)/pytest -q -p no:cacheprovider --reverse $(ARGS)

# The workflow suite with every test worker's workflow cache at 0: each workflow task replays
# the whole history (non-determinism a warm cache hides shows here; it found one in the local
# flush). Part of `make test`: about two minutes on a quiet 2-core machine. Left out of this
# run: the tests that drive whole multi-organisation rounds (round bounded, round check, digest
# over a round, township lights, a plan version over a round, the round's continue-as-new).
# At cache 0 every query and signal to their round replays its whole history, and under load
# their RPCs time out ("Timeout expired": 5 of 61 on 30 Nov with a CI run beside it; the
# continue-as-new test's time-skipping sleep in one of two clean-clone runs on 1 Dec; no
# non-determinism). They pass with the cache on, the round, digest and circular workflow types
# are still replayed from recorded histories (test_replay.py), and `make test-nocache ARGS=`
# runs them at cache 0 too.
NOCACHE_DESELECT := \
	--deselect tests/workflows/test_round_bounded.py \
	--deselect tests/workflows/test_round_check.py::test_round_checks_on_working_mornings_only_and_still_completes \
	--deselect tests/workflows/test_digest_circular.py::test_digest_and_circular_over_a_round_with_laggards \
	--deselect tests/workflows/test_lights.py::test_the_laggard_of_its_township_turns_yellow_until_it_catches_up \
	--deselect tests/workflows/test_plan_version_workflow.py::test_a_plan_version_moves_open_deadlines_and_timers_once_and_is_audited \
	--deselect tests/workflows/test_round_state_size.py::test_round_continues_as_new_with_a_small_input_and_its_progress
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
