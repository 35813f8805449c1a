# make demo : install into .venv, train the default (digits) and write runs/demo with its report
# make test : install into .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test install data

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# Fashion-MNIST's IDX files from Debian (tests that need them skip, saying why, when this cannot run).
data:
	@[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || \
	  { [ "$$(id -u)" = 0 ] && (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1; } || \
	  echo "note: dataset-fashion-mnist not installed; Fashion-MNIST tests will be skipped"

demo: install
	$(VENV)/bin/trainwise train configs/digits.toml --out runs/demo

test: install data
	$(PY) -m pytest -q -n 2 --dist loadgroup
