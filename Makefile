# The two commands of the README: `make run` and `make test`. Everything else is a
# step of theirs or a target of its own (bench, fuzz).
BUILD      ?= build
ASAN_BUILD ?= build-asan
# Fixed: the fuzz_smoke ctest looks for it there (PRISM_FUZZ_BUILD_DIR).
FUZZ_BUILD := build-fuzz
FUZZ_SECONDS ?= 60
JOBS       ?= $(shell nproc)
CONFIG     ?= etc/prism.yaml
CMAKE_GEN  := -G Ninja
# From `project(prism VERSION x.y.z ...)`: the version in the package file names.
PRISM_VERSION := $(shell awk '/^project.prism VERSION/ {print $$3}' CMakeLists.txt)

.PHONY: all setup build build-asan build-fuzz run cluster-demo test test-unit test-asan bench fuzz clean deb package-test

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

# The libFuzzer targets only (tests/fuzz), in a clang tree of their own; the rest of the
# project is configured there but not compiled.
build-fuzz: setup
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DPRISM_FUZZ=ON -DPRISM_BUILD_TESTS=OFF
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target prism-fuzzers

# Starts prismd on the embedded defaults with the plugins this build produced; its state
# (the server key, created on first start) lives in build/state. HTTP (/metrics, /healthz)
# and WebSocket on 127.0.0.1:4000 (WS_LISTEN=off to leave it out).
WS_LISTEN ?= 127.0.0.1:4000
run: build
	$(BUILD)/prismd --config $(CONFIG) --plugins-dir $(BUILD)/plugins --state-dir $(BUILD)/state \
	  --ws-listen $(WS_LISTEN)

# Three nodes and a redis-server on loopback, one cluster (docs/operations.md §11), until
# Ctrl-C; logs and state in $(BUILD)/cluster-demo.
cluster-demo: build
	scripts/cluster-demo.sh $(BUILD)

test: build build-asan build-fuzz
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) --timeout 300
	ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS) --timeout 600

# prism-bench against prismd and against the raw UDP echo baseline, in one run; then request
# latency through the impairment proxy (10% loss, run_impaired_bench.sh) beside ENet; then the
# practice service on sqlite and redis beside redis-benchmark ZADD/ZREVRANGE; then ws_bench
# against the WebSocket gateway beside a plain libwebsockets echo (lws_echo_baseline); then
# publishes across three cluster nodes beside Redis's own pub/sub.
bench: build
	tests/bench/run_bench.sh $(BUILD)
	tests/bench/run_impaired_bench.sh $(BUILD)
	tests/bench/run_store_bench.sh $(BUILD)
	tests/bench/run_ws_bench.sh $(BUILD)
	tests/bench/run_cluster_bench.sh $(BUILD)

# FUZZ_SECONDS per fuzz target (tests/fuzz/run_fuzz.sh); `make test` runs a short smoke.
fuzz: build-fuzz
	tests/fuzz/run_fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# The Debian packages (packaging/packaging.cmake): $(BUILD)/prism_<version>_<arch>.deb and
# $(BUILD)/prism-plugin-sdk_<version>_<arch>.deb, then lintian on both when it is installed.
deb: build
	cd $(BUILD) && cpack -G DEB
	@if command -v lintian >/dev/null; then \
	  echo "lintian $(BUILD)/prism_$(PRISM_VERSION)_*.deb $(BUILD)/prism-plugin-sdk_$(PRISM_VERSION)_*.deb"; \
	  lintian --fail-on error $(BUILD)/prism_$(PRISM_VERSION)_*.deb $(BUILD)/prism-plugin-sdk_$(PRISM_VERSION)_*.deb; \
	fi

# Installs the packages, drives the installed prismd, then purges them
# (tests/package/deb_test.sh; needs root, part of `make test` too).
package-test: build
	ctest --test-dir $(BUILD) --output-on-failure -R '^deb_install$$'

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
