# Two commands for a newcomer: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# librosa's numba JIT cache: kept between processes so the second call is fast.
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba

.PHONY: setup test demo bench lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade -q pip
	$(BIN)/pip install -q -e ".[test]"
	$(BIN)/pip install -q --no-deps wav2clip==0.1.0
	# mediapipe (Pose: landmarks and person mask, vision/person.py) without its declared jax, jaxlib,
	# opencv-contrib-python and sounddevice, which Pose never imports; its imports are in pyproject.toml.
	$(BIN)/pip install -q --no-deps mediapipe==0.10.14
	touch $@

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# The bundled example still and track (both made by the project) danced by the bundled starter model.
demo: setup
	$(BIN)/dance-any-beat generate --image examples/example_still.png --audio examples/example_track.ogg \
		--out out/demo --preset standard

# Issue 7's benchmarks, each printing its table and writing out/bench/NAME.json (RESULTS.md quotes them).
# The sampler ratio runs DDPM with 1000 steps: about half an hour on 2 CPU cores. The GPU one runs where CUDA is.
bench: setup
	mkdir -p out/bench
	$(BIN)/python benchmarks/beats_speed.py --json out/bench/beats_speed.json
	$(BIN)/python benchmarks/generate_cpu.py --json out/bench/generate_cpu.json
	$(BIN)/python benchmarks/sampler_ratio.py --json out/bench/sampler_ratio.json
	if $(BIN)/python -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then \
		$(BIN)/python benchmarks/gpu_sampling.py --json out/bench/gpu_sampling.json; fi

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf out .pytest_cache .ruff_cache
