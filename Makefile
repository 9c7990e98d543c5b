# Capsem front door. `make run` sets everything up on a fresh machine and runs
# a command in a fresh sandbox; `make test` runs every test suite.
SHELL := /bin/bash
.DEFAULT_GOAL := build

CAPSEM_HOME ?= $(HOME)/.capsem
BUILD       ?= build/host
ASAN_BUILD  ?= build/asan
FUZZ_BUILD  ?= build/fuzz
ASSETS      ?= build/assets
PROFILES    ?= code,minimal
PYTEST      ?= /usr/bin/python3 -m pytest
FUZZ_SECS   ?= 20
RUN_CMD     ?= echo "Hello from $$(hostname), a Capsem sandbox"; uname -sr; python3 --version

GUEST_BINS  = $(BUILD)/src/guest/capsem-agent $(BUILD)/src/guest/capsem-init
HOST_BINS   = capsem capsem-service capsem-process

.PHONY: deps build asan fuzz assets install run test unit-test asan-test fuzz-test system-test \
        system-test-asan bench clean format

deps:
	@./scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=debugoptimized

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Dguest=false -Db_sanitize=address,undefined -Db_lundef=false

asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) -Dguest=false -Dfuzz=true \
	    -Db_sanitize=address,undefined -Db_lundef=false

fuzz: deps $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)

# Guest image: kernel, initrd (capsem-init + capsem-agent) and rootfs profiles,
# cached by input hash under ~/.cache/capsem/images (seconds when unchanged).
assets: build
	./images/build.sh --out $(ASSETS) --agent $(BUILD)/src/guest/capsem-agent \
	    --init $(BUILD)/src/guest/capsem-init --profiles $(PROFILES) >/dev/null

install: build assets
	./scripts/install.sh --home "$(CAPSEM_HOME)" --bin-dir $(BUILD)/src/cmd --assets $(ASSETS)

run: install
	"$(CAPSEM_HOME)/bin/capsem" run -- '$(RUN_CMD)'

unit-test: build
	meson test -C $(BUILD) --print-errorlogs

asan-test: asan
	meson test -C $(ASAN_BUILD) --print-errorlogs

fuzz-test: fuzz
	./tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECS)

system-test: build assets
	CAPSEM_TEST_BIN_DIR=$(CURDIR)/$(BUILD)/src/cmd CAPSEM_TEST_ASSETS=$(CURDIR)/$(ASSETS) \
	    $(PYTEST) -q tests/system

# A fast subset of the system tests against ASan+UBSan host binaries.
system-test-asan: asan assets
	CAPSEM_TEST_BIN_DIR=$(CURDIR)/$(ASAN_BUILD)/src/cmd CAPSEM_TEST_ASSETS=$(CURDIR)/$(ASSETS) \
	    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    $(PYTEST) -q -m fast tests/system

# capsem-mcp through the official MCP TypeScript SDK (tests/mcp): real service and VMs.
.PHONY: mcp-test
mcp-test: build assets
	@[ -d tests/mcp/node_modules ] || (cd tests/mcp && npm ci)
	cd tests/mcp && CAPSEM_TEST_BIN_DIR=$(CURDIR)/$(BUILD)/src/cmd \
	    CAPSEM_TEST_ASSETS=$(CURDIR)/$(ASSETS) node --test --test-concurrency=1 mcp.test.mjs

test: unit-test asan-test fuzz-test system-test system-test-asan mcp-test

bench: build assets
	CAPSEM_TEST_BIN_DIR=$(CURDIR)/$(BUILD)/src/cmd CAPSEM_TEST_ASSETS=$(CURDIR)/$(ASSETS) \
	    /usr/bin/python3 bench/run.py --all

format:
	find src tests -name '*.[ch]' | xargs clang-format -i

clean:
	rm -rf build
