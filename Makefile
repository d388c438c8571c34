# Squeeze — two commands on a fresh Debian bookworm machine:
#   make demo   install what is missing, build, run a real compression job end to end
#   make test   install what is missing, build, run every test (ctest)
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps configure build test demo bench clean

all: build

deps:
	bash scripts/install-deps.sh

configure: deps
	cmake -S . -B $(BUILD_DIR) -G Ninja $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# The fuzz build (readers only, ~2–3 min cold) comes first so that the ctest
# fuzz_smoke really fuzzes every reader in CI.
test: build fuzz-build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 900

demo: build
	bash scripts/demo.sh $(BUILD_DIR)

bench: build
	bash scripts/bench.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR)

# Hostile input (issue 11). `make stress` runs the long checks; each part is a
# prerequisite of it (stress-fuzz here), so other parts can add theirs.
FUZZ_BUILD_DIR ?= build-fuzz
ASAN_BUILD_DIR ?= build-asan
.PHONY: stress fuzz-build stress-fuzz test-sanitize

# libFuzzer targets (tests/fuzz): clang-14, coverage + ASan + UBSan. fuzz_all
# links only the readers' sources; `make stress` adds fuzz_deep (model loaders,
# recipe parser). `make test` builds fuzz_all first; its ctest fuzz_smoke runs
# each target for 10 s (it skips only when no fuzz build exists).
fuzz-build: deps
	CC=clang-14 CXX=clang++-14 cmake -S . -B $(FUZZ_BUILD_DIR) -G Ninja -DSQUEEZE_FUZZ=ON
	cmake --build $(FUZZ_BUILD_DIR) -j $(JOBS) --target fuzz_all

# 300 s per fuzz target (FUZZ_SECONDS=...), corpus kept in $(FUZZ_BUILD_DIR)/fuzz-corpus.
FUZZ_SECONDS ?= 300
stress-fuzz: fuzz-build
	cmake --build $(FUZZ_BUILD_DIR) -j $(JOBS) --target fuzz_deep
	bash scripts/stress-fuzz.sh --build-dir $(FUZZ_BUILD_DIR) --seconds $(FUZZ_SECONDS)

stress: stress-fuzz

# Crash consistency (more jobs, more kills) and the coordinator under load with
# its RSS sampled (scripts/stress.sh; tests/integration/reliability).
.PHONY: stress-reliability
stress-reliability: build
	bash scripts/stress.sh $(BUILD_DIR)

stress: stress-reliability

# The unit tests built and run under ASan + UBSan (SQUEEZE_SANITIZE=ON).
test-sanitize: deps
	bash scripts/test-sanitize.sh $(ASAN_BUILD_DIR) $(JOBS)

# The distillation comparison of issue 6 (scripts/demo-distill-compare.sh):
# magnitude-50% and RTN-3-bit students of stories260K recovered by CE, forward
# KL, reverse KL (MiniLLM) and GKD at equal steps through `squeeze run`, printed
# as a table. Needs ../shared; 10 runs of 200 steps (STEPS, STUDENTS, LOSSES,
# PARALLEL, THREADS as environment variables).
.PHONY: demo-distill
demo-distill: build
	bash scripts/demo-distill-compare.sh $(BUILD_DIR) $(BUILD_DIR)/distill-compare
