# Two commands do everything: `make demo` (the offline demo on the embedded Gemma) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# torch==2.13.0 resolves to the local CPU wheel on this project's machines. On another CPU-only machine add
# TORCH_INDEX=https://download.pytorch.org/whl/cpu so pip does not fetch gigabytes of CUDA packages; on a CUDA
# machine use TORCH="torch" (or your CUDA build) and then `make gpu`.
TORCH  ?= torch==2.13.0
TORCH_INDEX ?=
EXTRAS ?= embedded,dev,fast
# llama-cpp-python compiles llama.cpp. Its default, -march=native, emits Intel AMX tile instructions wherever the CPU
# reports AMX, and a virtual machine that reports AMX without enabling it kills the process (SIGILL in
# ggml_backend_amx_mul_mat) at the first matmul. On x86_64 we build for x86-64-v3 (AVX2, FMA, F16C) instead: it
# runs on any x86 CPU of the last ten years. Set LLAMA_CMAKE_ARGS yourself for a CUDA or a native build.
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
endif
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test gpu clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/python -m curate.demo prepare runs/demo-sources
	$(BIN)/curate run pipelines/demo.yaml --run-dir runs/demo

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider

gpu: install
	$(BIN)/pip install -e ".[gpu]"

clean:
	rm -rf runs .pytest_cache
