# Two commands do all of the set-up: `make demo` and `make test`.
SHELL := /bin/bash
, := ,
# The first python3.12 that actually runs (a pyenv shim may exist without 3.12 being selected); pyenv's
# versions are looked for under $PYENV_ROOT, $HOME and the account's own home (HOME may be a new
# empty folder, as in CI's `make demo`).
ACCOUNT_HOME := $(shell getent passwd "$$(id -un)" 2>/dev/null | cut -d: -f6)
PYTHON312 := $(shell for p in python3.12 $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3.12 \
	$$HOME/.pyenv/versions/3.12*/bin/python3.12 $(ACCOUNT_HOME)/.pyenv/versions/3.12*/bin/python3.12; do \
	$$p -c "import sys" >/dev/null 2>&1 && { command -v $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
SOURCES := $(shell find vs_superslomo csrc models -type f -not -name '*.pyc') setup.py pyproject.toml setup.cfg

.PHONY: demo test lint data train bench quality speed soak gpu-check preview-check preview-deps clean

$(VENV)/.deps: pyproject.toml
	@test -n "$(PYTHON312)" || { echo "error: python3.12 is required (VapourSynth R81 wheels need it)" >&2; exit 1; }
	test -x $(PY) || $(PYTHON312) -m venv $(VENV)
	$(PIP) install --upgrade "pip>=24" "setuptools>=77" wheel
	$(PIP) install "vapoursynth>=81"
	$(PIP) install --no-build-isolation ".[test,train,cli,bench]"
	$(VENV)/bin/vapoursynth config
	touch $@

# The package is installed (not editable) so that the native plugin lands in vapoursynth's plugin folder.
$(VENV)/.installed: $(VENV)/.deps $(SOURCES)
	rm -rf build  # setuptools would otherwise ship modules deleted since the last build
	$(PIP) install --no-build-isolation --no-deps --force-reinstall . >/dev/null
	touch $@

demo: $(VENV)/.installed
	$(PY) examples/demo.py

test: $(VENV)/.installed lint
	cd tests && ../$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check vs_superslomo tests benchmarks examples
	$(VENV)/bin/mypy

data: $(VENV)/.installed
	$(PY) -m vs_superslomo.train.sources

# jemalloc that keeps freed memory avoids a page-fault storm in PyTorch's CPU training (DEVELOPERS.md).
JEMALLOC := $(wildcard /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 /usr/lib/aarch64-linux-gnu/libjemalloc.so.2)
train: $(VENV)/.installed
	$(if $(JEMALLOC),LD_PRELOAD=$(firstword $(JEMALLOC)) MALLOC_CONF=dirty_decay_ms:-1$(,)muzzy_decay_ms:-1) \
	$(PY) -m vs_superslomo.train --out $${VS_SUPERSLOMO_DATA:-$$HOME/.cache/vs-superslomo}/runs/dis4 \
		--config configs/dis-w4.json --init models/superslomo.safetensors

bench: $(VENV)/.installed
	$(PY) benchmarks/engine_speed.py

quality: $(VENV)/.installed
	$(PY) benchmarks/quality.py

speed: $(VENV)/.installed
	$(PY) benchmarks/speed.py

# 20,000 source frames (40,000 output frames) through vspipe: about 100 minutes on 2 cores (6,031 s on
# 2026-11-25, README). Not part of `make test`.
soak: $(VENV)/.installed
	$(PY) benchmarks/soak.py --width 2

# On a CUDA machine (pip install 'vs-superslomo[cuda]' into .venv first): the CUDA tests, a 1080p
# factor-2 vspipe run on the GPU, its frames against the CPU's. Without a CUDA device it prints
# "no CUDA device: skipped" and exits 0.
gpu-check: $(VENV)/.installed
	$(PY) benchmarks/gpu_check.py

# vs-preview (the `preview` extra) headless: opens examples/slowmo_x4.vpy on the demo clip at frame 5
# under Xvfb and exits cleanly, with nothing of ours in its log. Needs `make preview-deps` (root) once.
$(VENV)/.preview: $(VENV)/.installed
	$(PIP) install --no-build-isolation ".[preview]"
	touch $@

preview-check: $(VENV)/.preview
	$(PY) benchmarks/preview_check.py --frame 5

# Debian/Ubuntu packages for preview-check: Xvfb and the X/PulseAudio libraries PyQt6 6.10 loads.
preview-deps:
	apt-get update
	apt-get install -y xvfb xauth libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0 libpulse0 libegl1

clean:
	rm -rf $(VENV) build *.egg-info
