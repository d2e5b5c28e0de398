# dimwatch: `make run` starts the service, `make test` runs every check. Both install first, each
# only what it needs: run the server extra, test the test extra (which includes the server).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
DATA_DIR ?= data

.PHONY: install run demo test lint bench clean
.PRECIOUS: $(VENV)/.installed-%

# $(VENV)/.installed-EXTRA: the venv with `pip install -e '.[EXTRA]'`, redone when pyproject changes.
$(VENV)/.installed-%: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[$*]'
	touch $@

install: $(VENV)/.installed-server

run: $(VENV)/.installed-server
	@echo "dimwatch is $(BIN)/dimwatch; in another terminal, 'source $(VENV)/bin/activate' puts it on PATH"
	$(BIN)/dimwatch serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

demo: $(VENV)/.installed-server
	$(BIN)/dimwatch demo

lint: $(VENV)/.installed-test
	$(BIN)/ruff check streaming service clients tests bench examples
	$(BIN)/ruff format --check streaming service clients tests bench examples
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
