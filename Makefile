# Two commands for a new user: `make demo` and `make test`. Each creates (or reuses)
# a virtual environment in .venv and installs the project from its own files.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench serve clean

$(STAMP): requirements.txt setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt pytest pytest-xdist setuptools httpx selenium scikit-image imageio
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Two test processes, whole files to each (a file's tiny model and TensorFlow process are shared by its
# tests): 6.6 minutes against 9.8 in one on 2 cores (docs/development.md).
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests

demo: $(STAMP)
	$(BIN)/python demo.py

# The web app on http://127.0.0.1:8080/ with the shipped model; SERVE_FLAGS="--checkpointDir DIR --port N ..."
serve: $(STAMP)
	$(BIN)/python serve.py $(SERVE_FLAGS)

bench: $(STAMP)
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_complete.py --nIter 20
	$(BIN)/python bench/bench_align.py

clean:
	rm -rf $(VENV) demo_out build *.egg-info
