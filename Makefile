# dimwatch: `make run` starts the service, `make test` runs every check. Both install first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
DATA_DIR ?= data

.PHONY: install run demo test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[test,bench,cluster]'
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/dimwatch serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

demo: install
	$(BIN)/dimwatch demo

lint: install
	$(BIN)/ruff check streaming service clients tests bench
	$(BIN)/ruff format --check streaming service clients tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: install
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
