# Two commands: `make demo` and `make test`. Each creates .venv from scratch when missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint clean browser

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pointtal demo --out runs/demo

test: $(STAMP) browser
	$(BIN)/python -m pytest tests

# The label page's browser test drives Debian's chromium (Playwright's own download is not used): installed here
# when missing and we may (root with apt-get, as in CI); elsewhere that test is skipped and says why.
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	fi

bench: $(STAMP)
	$(BIN)/python bench/eval_speed.py
	$(BIN)/python bench/train_speed.py

lint: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt ruff
	$(BIN)/ruff check pointtal tests bench
	$(BIN)/ruff format --check pointtal tests bench

clean:
	rm -rf $(VENV) runs
