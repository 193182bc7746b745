PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m actionlrp.demo

test: $(STAMP) browser
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q

# Headless Chromium for the report test (Debian's package); the test skips where it can't be had.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { command -v apt-get >/dev/null 2>&1 && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	    >/dev/null 2>&1; } || echo "chromium could not be installed: the browser test will skip"

bench: $(STAMP)
	$(PY) benchmarks/bench_motion.py
	$(PY) benchmarks/bench_fisher.py
	$(PY) benchmarks/bench_recognition.py

clean:
	rm -rf $(VENV) out .pytest_cache
