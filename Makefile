# llm-gateway: build, run, test, install.
#   make run       build (debug) and run the daemon on gateway.yaml.example
#   make test      install what the tests need, build, run the whole suite, lint the man pages and the unit
#   make deps      install the Debian packages the build and the tests need (only those missing)
#   make release   optimised build, with the daemon's code laid out together (RELEASE_SCRATCH, default .build)
#   make test-release  the suite, its daemon tests run against the release build
#   make install   install binary, unit, man pages and example config (PREFIX, DESTDIR honoured)

SHELL := /bin/bash
PREFIX ?= /usr/local
DESTDIR ?=
CONFIG ?= gateway.yaml.example
SWIFT ?= swift

# hiredis (libhiredis-dev) formats and parses the Redis protocol; the Redis client's tests run a real redis-server,
# the PostgreSQL request log's tests a throwaway PostgreSQL cluster (postgresql).
# mandoc lints the man pages, systemd-analyze (systemd) verifies the unit.
# openssl makes the certificate of the SMTP relay the STARTTLS test talks to.
DEB_PACKAGES = libhiredis-dev redis-server postgresql mandoc systemd openssl
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test test-release deps test-deps lint build release bench-floor install clean

deps:
	@missing=$$(for package in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q 'ok installed' || echo $$package; done); \
	if [ -n "$$missing" ]; then \
		echo "installing" $$missing; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

run: deps
	$(SWIFT) build
	.build/debug/llm-gateway serve --config $(CONFIG)

# Python's official openai and anthropic SDKs drive the gateway in end-to-end tests; aiosmtpd is the SMTP relay the
# email notifications are delivered to (Tests/smtp/smtp_sink.py).
test-deps:
	@python3 -c 'import openai' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check openai
	@python3 -c 'import anthropic' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check anthropic
	@python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check aiosmtpd

# The suite's output is kept in .build/test.log; on failure, the failed expectations are repeated at the end.
# Many tests run real servers and processes: four at a time keeps their timers honest on a 2-core machine
# (unbounded, swift-testing starts all of them at once).
TEST_PARALLELISM ?= 4
test: deps test-deps
	$(SWIFT) build --build-tests
	@set -o pipefail; SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH=$(TEST_PARALLELISM) $(SWIFT) test --skip-build 2>&1 | tee .build/test.log || { \
		echo; echo "=== failures ==="; grep -E '✘|recorded an issue|error:' .build/test.log | grep -v '^✘ Test run' | head -60; exit 1; }
	@$(MAKE) --no-print-directory lint

# The same suite, its daemon tests (those that run the executable) run against the release build of `make release`.
# It warns (never fails) when release/hot-functions.txt has aged (under 90 % of its functions still in the binary):
# recording it again is a release step (bench/README.md).
test-release: release
	python3 bench/hot_functions.py --check $(RELEASE_SCRATCH)/release/llm-gateway release/hot-functions.txt
	@LLM_GATEWAY_BINARY=$(CURDIR)/$(RELEASE_SCRATCH)/release/llm-gateway $(MAKE) --no-print-directory test

# The man pages must be clean under mandoc's lint, and the unit must pass systemd-analyze verify (run on a copy
# that points at the binary just built, with the man pages it names findable).
lint:
	mandoc -T lint man/llm-gateway.8 man/gateway.yaml.5
	@tmp=$$(mktemp -d); mkdir -p $$tmp/man/man5 $$tmp/man/man8; \
	cp man/gateway.yaml.5 $$tmp/man/man5/; cp man/llm-gateway.8 $$tmp/man/man8/; \
	sed 's#/usr/local/bin/llm-gateway#$(CURDIR)/.build/debug/llm-gateway#g' systemd/llm-gateway.service > $$tmp/llm-gateway.service; \
	MANPATH=$$tmp/man systemd-analyze verify $$tmp/llm-gateway.service && echo "systemd-analyze verify: systemd/llm-gateway.service is valid"; \
	status=$$?; rm -rf $$tmp; exit $$status

build:
	$(SWIFT) build

# Linked against the toolchain's Swift runtime (not --static-swift-stdlib): the daemon runs Swift concurrency on NIO's event
# loops through a runtime hook that a statically linked runtime does not export.
# The release layout (docs/performance.md): every function in its own section, linked by the toolchain's lld in the
# order of release/hot-functions.txt (what start-up and the request path run, recorded by bench/hot_functions.py),
# the compiler's unnamed helpers grouped by release/layout.ld, relative relocations packed (DT_RELR). The daemon's
# code then sits together instead of across the whole binary: less resident memory, fewer cold pages per request.
RELEASE_SCRATCH ?= .build
RELEASE_FLAGS = -Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections -Xswiftc -use-ld=lld \
	-Xlinker --symbol-ordering-file=$(CURDIR)/release/hot-functions.txt -Xlinker --no-warn-symbol-ordering \
	-Xlinker -T -Xlinker $(CURDIR)/release/layout.ld -Xlinker -z -Xlinker pack-relative-relocs
# SwiftPM does not see the two layout files as inputs: removing the binary makes every build link again (seconds).
release:
	rm -f $(RELEASE_SCRATCH)/release/llm-gateway
	$(SWIFT) build -c release --product llm-gateway --scratch-path $(RELEASE_SCRATCH) $(RELEASE_FLAGS)

# The benchmark harness's stack floor (`bench/run.sh --floor`), built as the daemon is.
bench-floor:
	$(SWIFT) build -c release --product bench-floor --scratch-path $(RELEASE_SCRATCH) $(RELEASE_FLAGS)

install: release
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man8 \
		$(DESTDIR)$(PREFIX)/share/llm-gateway $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 0755 -s $(RELEASE_SCRATCH)/release/llm-gateway $(DESTDIR)$(PREFIX)/bin/llm-gateway
	install -m 0644 man/llm-gateway.8 $(DESTDIR)$(PREFIX)/share/man/man8/llm-gateway.8
	install -m 0644 man/gateway.yaml.5 $(DESTDIR)$(PREFIX)/share/man/man5/gateway.yaml.5
	install -m 0644 gateway.yaml.example $(DESTDIR)$(PREFIX)/share/llm-gateway/gateway.yaml.example
	sed 's#/usr/local/bin/#$(PREFIX)/bin/#g' systemd/llm-gateway.service > $(DESTDIR)$(PREFIX)/lib/systemd/system/llm-gateway.service
	chmod 0644 $(DESTDIR)$(PREFIX)/lib/systemd/system/llm-gateway.service

clean:
	rm -rf .build
