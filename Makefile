# The two commands of the README: `make run` and `make test`. Everything else is a
# step of theirs or a target of its own (bench, fuzz).
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CONFIG     ?= etc/prism.yaml
CMAKE_GEN  := -G Ninja

.PHONY: all setup build build-asan run test test-unit test-asan bench clean

all: build

# Installs the Debian packages that are missing (apt-get, only when needed).
setup:
	@scripts/setup.sh

build: setup
	cmake -S . -B $(BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j $(JOBS)

# The same tree built with AddressSanitizer and UndefinedBehaviorSanitizer.
build-asan: setup
	cmake -S . -B $(ASAN_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPRISM_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j $(JOBS)

# Starts prismd on the embedded defaults with the plugins this build produced.
run: build
	$(BUILD)/prismd --config $(CONFIG) --plugins-dir $(BUILD)/plugins

test: build build-asan
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) --timeout 300
	ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS) --timeout 600

# prism-bench against prismd and against the raw UDP echo baseline, in one run.
bench: build
	tests/bench/run_bench.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
