# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: install demo test bench fashion-mnist clean

$(INSTALLED): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

install: $(INSTALLED)

demo: $(INSTALLED)
	$(VENV)/bin/vqtune run search_spaces/quick.yaml

test: $(INSTALLED)
	$(PY) -m pytest

bench: $(INSTALLED)
	$(PY) benchmarks/train_throughput.py --write BENCHMARKS.md
	$(PY) benchmarks/trainer_vs_reference.py --profile --write BENCHMARKS.md
	$(PY) benchmarks/prior_throughput.py --write BENCHMARKS.md

# Fashion-MNIST for benchmarks: the Debian package dataset-fashion-mnist, installed when apt-get is usable.
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
fashion-mnist:
	@test -e $(FASHION_MNIST) || test -n "$$VQTUNE_FASHION_MNIST_DIR" \
	  || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
	       && (apt-get install -y -q dataset-fashion-mnist || (apt-get update -q && apt-get install -y -q dataset-fashion-mnist)); } \
	  || { echo "Fashion-MNIST missing: install the Debian package dataset-fashion-mnist or set VQTUNE_FASHION_MNIST_DIR"; exit 2; }

clean:
	rm -rf $(VENV) build *.egg-info
