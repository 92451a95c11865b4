# Set-up is idempotent: each step reruns only when its inputs change (stamps in .cache/).
PYTHON ?= python3
STAMPS := .cache/stamps

.PHONY: deck test setup setup-test

deck: setup
	$(PYTHON) build.py

# Two workers, a test file each at a time, in the order tests/conftest.py sets: most slow tests wait on
# a demo server, a compiler or a browser.
test: setup-test
	$(PYTHON) -m pytest -n 2 --dist loadfile --no-loadscope-reorder

setup: $(STAMPS)/python $(STAMPS)/node

setup-test: setup $(STAMPS)/chromium

# torch is installed only if missing, so a CUDA build you already have is kept; otherwise the
# CPU wheel torch==2.13.0 that the deck is tested with (PyTorch's CPU index: PyPI's Linux wheel is
# the multi-GB CUDA build). The rest is pyproject.toml's declaration, at the lock's versions,
# with the optional TensorFlow extra that part 4 compares against.
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu

$(STAMPS)/python: pyproject.toml requirements.lock
	@$(PYTHON) -c "import torch" 2>/dev/null || \
		$(PYTHON) -m pip install "torch==2.13.0" --extra-index-url $(TORCH_CPU_INDEX) -c requirements.lock
	$(PYTHON) -m pip install -e ".[test,tensorflow]" -c requirements.lock
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/node: package.json package-lock.json
	npm ci --no-audit --no-fund
	@mkdir -p $(STAMPS) && touch $@

# Debian's Chromium drives the browser tests and `build.py pdf`.
$(STAMPS)/chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@mkdir -p $(STAMPS) && touch $@
