# Gearmesh: the two commands of the quick start, and a few more.
#   make demo   installs what is missing, builds, runs a 4-node network on 127.0.0.1
#   make test   installs what is missing, builds, runs the whole test suite, then
#               fuzzes the inbound frame path for CI_FUZZ_SECONDS (clang, build-fuzz/)
# Everything else (bench, crash, fuzz, sanitize, format) is optional.

BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo

DEB_PACKAGES := build-essential cmake ninja-build ccache pkg-config git \
  libcaf-dev libzmq3-dev cppzmq-dev libflatbuffers-dev flatbuffers-compiler \
  liblmdb-dev lmdb-utils libxxhash-dev libjemalloc-dev libasio-dev libboost-dev libgtest-dev libgmock-dev \
  libbenchmark-dev libtomlplusplus-dev libcli11-dev libspdlog-dev libfmt-dev \
  nlohmann-json3-dev curl jq clang-format clang libclang-rt-14-dev

.PHONY: all deps build test demo bench crash fuzz sanitize format clean

all: build

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(BUILD)/build.ninja: | deps
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j$(JOBS)

# Seconds of libFuzzer in `make test`, and in `make fuzz` (docs/security.md, "Fuzzing").
CI_FUZZ_SECONDS ?= 30
FUZZ_SECONDS ?= 3600

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS) --timeout 600
	JOBS=$(JOBS) fuzz/run.sh $(CI_FUZZ_SECONDS)

fuzz: deps
	JOBS=$(JOBS) fuzz/run.sh $(FUZZ_SECONDS)

demo: build
	examples/demo/run-demo.sh $(BUILD)

# The long crash test (docs/operations.md, "Crash testing"); CI runs a short one.
KILLS ?= 1000
SEED ?= 7
crash: build
	$(BUILD)/tests/crash/gearmesh_crash_harness --kills $(KILLS) --seed $(SEED)

bench: build
	$(BUILD)/bench/bench_transport
	$(BUILD)/bench/bench_store
	$(BUILD)/bench/bench_negotiation

sanitize:
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DCMAKE_BUILD_TYPE=Debug -DGEARMESH_SANITIZE=ON -DGEARMESH_BUILD_BENCH=OFF"

format:
	git ls-files '*.cpp' '*.hpp' | xargs clang-format -i

clean:
	rm -rf $(BUILD) build-asan build-fuzz
