# Thin driver over CMake. The README's two commands: `make demo` and `make check`.
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 30
BOTS ?= 10000
DURATION ?= 20
ENFORCE ?= 0
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: all deps build release debug fuzz-build sinkd demo check test format lint clean install deb

all: build

deps:
	@./scripts/deps.sh

build: release debug

# Build output goes to build/<dir>.log; on failure its tail is shown.
BUILD = cmake --build build/$(1) -j $(JOBS) $(2) >build/$(1).log 2>&1 \
	|| { tail -40 build/$(1).log; echo "build of build/$(1) failed (full log: build/$(1).log)"; exit 1; }

release: deps
	@mkdir -p build && cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
	@echo "building build/release"; $(call BUILD,release)

debug: deps
	@mkdir -p build && cmake -S . -B build/debug -DCMAKE_BUILD_TYPE=Debug -DSINKD_SANITIZE=ON >/dev/null
	@echo "building build/debug (ASan+UBSan)"; $(call BUILD,debug)

fuzz-build: deps
	@mkdir -p build && CC=clang cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSINKD_FUZZ=ON >/dev/null
	@echo "building build/fuzz (libFuzzer)"; $(call BUILD,fuzz)

sinkd: deps
	@mkdir -p build && cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
	@echo "building build/release/sinkd"; $(call BUILD,release,--target sinkd)

demo: sinkd
	@BOTS=$(BOTS) DURATION=$(DURATION) ENFORCE=$(ENFORCE) ./scripts/demo.sh build/release/sinkd

test: release
	@cd build/release && ctest --output-on-failure

check: release debug fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) ./scripts/check.sh

# make install PREFIX=/usr DESTDIR=/tmp/root: the binary, man pages, data, /etc/sinkd/sinkd.conf
# and the systemd units (docs/operations.md, "Install"). The data path is compiled in from
# PREFIX, so the release tree is configured with it first.
install: deps
	@mkdir -p build && cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release \
	    -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	@echo "building build/release (PREFIX=$(PREFIX))"; $(call BUILD,release)
	@DESTDIR=$(DESTDIR) cmake --install build/release

# The Debian package, with the Debian tools and lintian: build/deb/sinkd_<version>_<arch>.deb.
deb: deps
	@JOBS=$(JOBS) ./scripts/build-deb.sh build/deb

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

lint: release
	@cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --suppress=missingIncludeSystem --inline-suppr -I src $$(git ls-files 'src/*.c')
	@clang-tidy -p build/release --quiet --warnings-as-errors='*' $$(git ls-files 'src/*.c') 2>/dev/null

clean:
	rm -rf build
