# crema: `make` builds, `make test` installs what is missing, builds and runs
# every test. CMake does the building; this file is the front door.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps test check asan fuzz clean

all: $(BUILD)/Makefile
	@$(MAKE) --no-print-directory -C $(BUILD) -j$(JOBS)

$(BUILD)/Makefile: CMakeLists.txt
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null

deps:
	@sh scripts/deps.sh

test: deps
	@$(MAKE) --no-print-directory all
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS) --timeout 1500

# The unit and golden tests without the slow ones (ctest labels, see
# CMakeLists.txt): under two minutes on 2 cores.
check: deps
	@$(MAKE) --no-print-directory all
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS) --timeout 1500 -L '^(unit|golden)$$' -LE '^slow$$'

# The tests again under AddressSanitizer + UndefinedBehaviorSanitizer; the
# Python and Spark tests load a library built without them.
asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan CMAKE_FLAGS="-DCREMA_SANITIZE=ON -DCREMA_CUDA=OFF -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++" all
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j$(JOBS) --timeout 1500 -LE '^(python|spark)$$'

# libFuzzer targets, each run for FUZZ_SECONDS, seeded from ../shared/corpus.
FUZZ_SECONDS ?= 15
fuzz: deps
	@$(MAKE) --no-print-directory BUILD=build-fuzz CMAKE_FLAGS="-DCREMA_FUZZ=ON -DCREMA_CUDA=OFF -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++" all
	@sh scripts/fuzz.sh build-fuzz $(FUZZ_SECONDS)

clean:
	rm -rf build build-asan build-fuzz

.PHONY: bench
# Benchmarks print ratios against yardsticks measured in the same run.
bench: all
	@$(MAKE) --no-print-directory -C $(BUILD) benches
	@sh bench/run.sh $(BUILD)

# LeNet on Fashion-MNIST, end to end (see demo/run.sh).
.PHONY: demo
demo: deps
	@$(MAKE) --no-print-directory all
	@sh demo/run.sh
