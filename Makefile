# Set-up is idempotent: each step reruns only when its inputs change (stamps in .cache/).
PYTHON ?= python3
STAMPS := .cache/stamps

.PHONY: deck test setup setup-test

deck: setup
	$(PYTHON) build.py

# Three workers on two cores, a test file each at a time, in the order tests/conftest.py sets: many
# slow tests wait on a demo server, a timeout or a browser, and the third keeps the cores busy then.
test: setup-test
	$(PYTHON) -m pytest -n 3 --dist loadfile --no-loadscope-reorder

setup: $(STAMPS)/python $(STAMPS)/node

setup-test: setup $(STAMPS)/chromium

# torch is installed only if missing, so a CUDA build you already have is kept; otherwise the
# CPU wheel torch==2.13.0 that the deck is tested with (PyTorch's CPU index: PyPI's Linux wheel is
# the multi-GB CUDA build; one retry per request, so a machine that cannot reach that index and has
# the wheel elsewhere does not wait a minute on it). The rest is pyproject.toml's declaration, at the
# lock's versions, with the optional TensorFlow extra that part 4 compares against.
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
PIP_INSTALL := $(PYTHON) -m pip install -c requirements.lock

$(STAMPS)/python: pyproject.toml requirements.lock
	@$(PYTHON) -c "import torch" 2>/dev/null || \
		$(PIP_INSTALL) --retries 1 "torch==2.13.0" --extra-index-url $(TORCH_CPU_INDEX)
	$(PIP_INSTALL) -e ".[test,tensorflow]"
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/node: package.json package-lock.json
	npm ci --no-audit --no-fund
	@mkdir -p $(STAMPS) && touch $@

# Debian's Chromium drives the browser tests and `build.py pdf`.
$(STAMPS)/chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@mkdir -p $(STAMPS) && touch $@
