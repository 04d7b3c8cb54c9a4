# Lumen Node — the two README commands:
#   make run    install what the node needs into .venv, then start it (tray app, or headless)
#   make test   install the test dependencies into .venv, then run the whole suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
ARGS   ?=

.PHONY: run test lint bench proto clean install install-dev sysdeps

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Re-install only when pyproject.toml changes.
$(VENV)/.installed-run: pyproject.toml | $(PY)
	$(PIP) install -q -e ".[gui]" --config-settings editable_mode=compat || $(PIP) install -q -e . --config-settings editable_mode=compat
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PIP) install -q -e ".[gui,dev]" --config-settings editable_mode=compat
	touch $@

install: $(VENV)/.installed-run
install-dev: $(VENV)/.installed-dev

sysdeps:
	@scripts/install_system_deps.sh

run: install
	$(VENV)/bin/lumen-hub start $(ARGS)

test: install-dev sysdeps
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q $(ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# bench/grpc_client.py is not a benchmark: grpc_overhead.py runs it as its client process
BENCHMARKS := download infer face_ocr grpc_overhead cluster

bench: install-dev
	@for b in $(BENCHMARKS); do echo "== bench/$$b.py"; $(PY) bench/$$b.py --quick || exit 1; done

proto: install-dev
	$(PY) scripts/gen_proto.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
