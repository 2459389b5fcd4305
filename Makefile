# Thin driver over CMake. The README's two commands: `make demo` and `make check`.
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 30
BOTS ?= 10000
DURATION ?= 20
ENFORCE ?= 0

.PHONY: all deps build release debug fuzz-build demo check test format lint clean

all: build

deps:
	@./scripts/deps.sh

build: release debug

release: deps
	@cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build/release -j $(JOBS)

debug: deps
	@cmake -S . -B build/debug -DCMAKE_BUILD_TYPE=Debug -DSINKD_SANITIZE=ON >/dev/null
	@cmake --build build/debug -j $(JOBS)

fuzz-build: deps
	@CC=clang cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSINKD_FUZZ=ON >/dev/null
	@cmake --build build/fuzz -j $(JOBS)

demo: release
	@BOTS=$(BOTS) DURATION=$(DURATION) ENFORCE=$(ENFORCE) ./scripts/demo.sh build/release/sinkd

test: release
	@cd build/release && ctest --output-on-failure

check: release debug fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) ./scripts/check.sh

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

lint: release
	@cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --suppress=missingIncludeSystem --inline-suppr -I src $$(git ls-files 'src/*.c')
	@clang-tidy -p build/release --quiet $$(git ls-files 'src/*.c') 2>/dev/null

clean:
	rm -rf build
