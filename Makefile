# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: install demo test bench bench-quick soak fashion-mnist gpu-check gpu-wheels clean

$(INSTALLED): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

install: $(INSTALLED)

demo: $(INSTALLED)
	$(VENV)/bin/vqtune run search_spaces/quick.yaml

# The suite spends most of its time waiting (Ray sessions starting, workers restarting, heartbeats going stale),
# so it runs in TEST_WORKERS processes side by side, each test file whole in one of them.
TEST_WORKERS ?= 3
test: $(INSTALLED)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

# Every figure of BENCHMARKS.md, measured in one run (about 50 min on 2 idle CPU cores, estimated from its parts when
# whole_model.py took 6 of them; pruning two-stage searches by bounds, its last run took 40 min on a busy machine);
# keep the machine idle.
bench: $(INSTALLED) fashion-mnist
	$(PY) benchmarks/train_throughput.py --write BENCHMARKS.md
	$(PY) benchmarks/trainer_vs_reference.py --profile --write BENCHMARKS.md
	$(PY) benchmarks/prior_throughput.py --write BENCHMARKS.md
	$(PY) benchmarks/sampling.py --write BENCHMARKS.md
	$(PY) benchmarks/orchestration_overhead.py --write BENCHMARKS.md
	$(PY) benchmarks/fashion_mnist_search.py --write BENCHMARKS.md
	$(PY) benchmarks/whole_model.py --write BENCHMARKS.md
	$(PY) benchmarks/quantizers.py --write BENCHMARKS.md
	$(PY) benchmarks/quantizers.py --dead-code-steps 0 --write BENCHMARKS.md
	$(PY) benchmarks/summary.py --write BENCHMARKS.md

# The same benchmarks, smaller (a few minutes): they print their reports and leave BENCHMARKS.md as it is.
bench-quick: $(INSTALLED) fashion-mnist
	$(PY) benchmarks/train_throughput.py --epochs 3 --crops-per-image 32 > /dev/null
	$(PY) benchmarks/trainer_vs_reference.py --repeats 1 > /dev/null
	$(PY) benchmarks/prior_throughput.py --repeats 2 > /dev/null
	$(PY) benchmarks/sampling.py --quick --repeats 1 > /dev/null
	$(PY) benchmarks/orchestration_overhead.py --trials 5 --epochs 1 6 --repeats 1 > /dev/null
	$(PY) benchmarks/fashion_mnist_search.py --trials 4 --epochs 3 --max-images 1200 > /dev/null
	$(PY) benchmarks/whole_model.py --trials 1 --epochs 1 --crops-per-image 6 --max-images 200 > /dev/null
	$(PY) benchmarks/quantizers.py --epochs 1 --prior-epochs 1 --max-images 700 --crops-per-image 8 > /dev/null

# A storage outage: a PostgreSQL server stopped mid-search and started again, and the search rerun, 3 times; then
# concurrent writers: 8 processes report epochs to SQLite, then PostgreSQL, for 60 s each. Fails if a finished
# trial or a value is lost, a trial runs twice or a call fails, and records the figures in BENCHMARKS.md.
soak: $(INSTALLED)
	$(PY) benchmarks/outage.py --write BENCHMARKS.md
	$(PY) benchmarks/soak.py --write BENCHMARKS.md
	$(PY) benchmarks/summary.py --write BENCHMARKS.md

# The GPU path in one call (benchmarks/gpu_check.py: GPU tests, throughput against the bf16 peak, fractional GPUs,
# the prior on CUDA; about 5 minutes). Without CUDA it prints one line and exits 0, writing nothing.
gpu-check: $(INSTALLED)
	$(PY) benchmarks/gpu_check.py --write BENCHMARKS.md

# What a GPU machine without network or pydantic needs to run the trainer and gpu-check: wheels for Python 3.12
# on x86-64 in .whl/ (see the header of benchmarks/gpu_check.py for the commands there).
GPU_WHEELS := pydantic pydantic_core annotated-types typing-inspection typing_extensions
gpu-wheels: $(INSTALLED)
	$(PY) -m pip download --quiet --disable-pip-version-check --only-binary=:all: --no-deps --python-version 3.12 \
	  --platform manylinux2014_x86_64 -c constraints.txt -d .whl $(GPU_WHEELS)

# Fashion-MNIST for benchmarks: the Debian package dataset-fashion-mnist, installed when apt-get is usable.
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
fashion-mnist:
	@test -e $(FASHION_MNIST) || test -n "$$VQTUNE_FASHION_MNIST_DIR" \
	  || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
	       && (apt-get install -y -q dataset-fashion-mnist || (apt-get update -q && apt-get install -y -q dataset-fashion-mnist)); } \
	  || { echo "Fashion-MNIST missing: install the Debian package dataset-fashion-mnist or set VQTUNE_FASHION_MNIST_DIR"; exit 2; }

clean:
	rm -rf $(VENV) build *.egg-info
