# Two commands do everything: `make demo` (the offline demo on the embedded Gemma) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# torch==2.13.0 resolves to the local CPU wheel on this project's machines. On another CPU-only machine add
# TORCH_INDEX=https://download.pytorch.org/whl/cpu so pip does not fetch gigabytes of CUDA packages; on a CUDA
# machine use TORCH="torch" (or your CUDA build) and then `make gpu`.
TORCH  ?= torch==2.13.0
TORCH_INDEX ?=
EXTRAS ?= embedded,dev,fast,ray
# llama-cpp-python compiles llama.cpp with -march=native, which uses Intel AMX tile instructions wherever the CPU
# reports AMX; a virtual machine that reports AMX without enabling it kills the process (SIGILL in
# ggml_backend_amx_mul_mat) at the first matrix multiply. On x86_64 we keep the native build (AVX-512 where the CPU
# has it) without AMX. Set LLAMA_CMAKE_ARGS for a CUDA build.
ifeq ($(shell uname -m),x86_64)
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=ON -DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)'
endif
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install system demo test gpu writer clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed

# Debian packages: tesseract-ocr (the dicom connector's burned-in text check, which the demo's DICOM source runs)
# and chromium (tests/test_view.py drives a real headless browser). As root (CI) what is missing is installed;
# otherwise the command to run is printed.
system:
	@missing=$$(echo $$(command -v tesseract >/dev/null || echo tesseract-ocr) \
		$$(command -v chromium >/dev/null || echo chromium)); \
	[ -z "$$missing" ] || { [ "$$(id -u)" = 0 ] && apt-get update && apt-get install -y $$missing; } \
		|| echo "missing: apt-get install $$missing (as root): the dicom OCR check needs tesseract, tests/test_view.py chromium"

demo: install system
	$(BIN)/python -m curate.demo prepare runs/demo-sources
	$(BIN)/curate run pipelines/demo.yaml --run-dir runs/demo

test: install system
	$(BIN)/python -m pytest -q -p no:cacheprovider

# Rebuild the question writer shipped in curate/llm/question_writer (about 30 minutes on 2 cores: 23-26 of training, then the held-out scoring; see its README).
writer: install
	$(BIN)/curate writer train finetune/question-writer.yaml --out curate/llm/question_writer

gpu: install
	$(BIN)/pip install -e ".[gpu]"

clean:
	rm -rf runs .pytest_cache
