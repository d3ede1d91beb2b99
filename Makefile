# The README's two commands: `make demo` and `make test`. Each sets up what it needs by itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The console's front-end packages (ECharts, Swagger UI) from the npm registry, as package-lock.json pins
# them; served by the app itself, never committed.
NODE_STAMP := node_modules/.installed

.PHONY: demo test lint serve clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Huimin needs Python >= 3.11 (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "Huimin's console needs Node.js and npm to install its front-end packages (Debian: apt-get install nodejs npm)" >&2; exit 1; }
	npm ci --no-audit --no-fund
	@touch $@

# The simulated Ziyang 2022 campaign (`huimin demo`, docs/demo.md) on a fresh embedded SQLite database in
# var/demo, then the console on http://127.0.0.1:8000/console over that database (Ctrl-C stops it).
DEMO_DIR := var/demo
demo: $(STAMP) $(NODE_STAMP)
	$(BIN)/huimin demo --out $(DEMO_DIR)
	@echo "Console: http://127.0.0.1:8000/console  (accounts above; code: $(BIN)/huimin demo-totp cityadmin)"
	HUIMIN_DATABASE_URL=sqlite+aiosqlite:///$(DEMO_DIR)/huimin-demo.db $(BIN)/huimin serve

test: $(STAMP) $(NODE_STAMP) lint
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/ruff format --check src tests $(wildcard bench)
	$(BIN)/mypy

serve: $(STAMP) $(NODE_STAMP)
	$(BIN)/huimin db upgrade
	$(BIN)/huimin serve

clean:
	rm -rf $(VENV) node_modules var .pytest_cache .mypy_cache .ruff_cache test-output
