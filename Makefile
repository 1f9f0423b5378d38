# mod_bastion: build, install, run, test, bench.
#   make            release build (target/release/libmod_bastion.so)
#   make install    into `apxs -q LIBEXECDIR` (+ /etc/apache2/mods-available on Debian), a2md into
#                   $(BINDIR); DESTDIR honoured
#   make run        demo server on 127.0.0.1 from conf/demo.conf.in, in the foreground
#   make test       cargo test for the workspace, then the end-to-end tests (pytest)
#   make bench      benchmarks against the stock modules (never run by CI; also bench-fcgi, bench-md)

APXS       ?= $(shell command -v apxs || command -v apxs2 || echo apxs)
CARGO      ?= cargo
PYTHON     ?= python3
DESTDIR    ?=
SO         := target/release/libmod_bastion.so
TEST_SO    := build/mod_bastion-test-hooks.so
LIBEXECDIR  = $(shell $(APXS) -q LIBEXECDIR 2>/dev/null || echo /usr/lib/apache2/modules)
SYSCONFDIR ?= /etc/apache2
BINDIR     ?= /usr/local/sbin
A2MD       := target/release/a2md
PYTEST_ARGS ?=
# The module, the test client, the key server and a2md are built in one cargo invocation, so
# their shared dependencies are compiled once with one feature set.
PKGS       := -p mod_bastion -p bastion-tlsprobe -p bastion-keyserver -p bastion-a2md

.PHONY: all build build-test-hooks build-tools install uninstall setup run test test-rust test-e2e bench bench-fcgi bench-md lint clean

all: build

build:
	$(CARGO) build --release $(PKGS)

# A second build of the module with the test-only hooks (a handler that panics on purpose).
$(TEST_SO): build
	$(CARGO) build --release $(PKGS) --features mod_bastion/test-hooks
	mkdir -p build && cp $(SO) $(TEST_SO)
	$(CARGO) build --release $(PKGS)

build-test-hooks: $(TEST_SO)

install: build
	install -d $(DESTDIR)$(LIBEXECDIR)
	install -m 0644 $(SO) $(DESTDIR)$(LIBEXECDIR)/mod_bastion.so
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 $(A2MD) $(DESTDIR)$(BINDIR)/a2md
	@if [ -d $(DESTDIR)$(SYSCONFDIR)/mods-available ] || [ -d $(SYSCONFDIR)/mods-available ]; then \
	  install -d $(DESTDIR)$(SYSCONFDIR)/mods-available; \
	  sed 's#/usr/lib/apache2/modules#$(LIBEXECDIR)#' apxs/bastion.load > $(DESTDIR)$(SYSCONFDIR)/mods-available/bastion.load; \
	  install -m 0644 apxs/bastion.conf $(DESTDIR)$(SYSCONFDIR)/mods-available/bastion.conf; \
	  echo "installed; enable with: a2enmod bastion"; \
	fi

uninstall:
	rm -f $(DESTDIR)$(LIBEXECDIR)/mod_bastion.so $(DESTDIR)$(BINDIR)/a2md \
	      $(DESTDIR)$(SYSCONFDIR)/mods-available/bastion.load \
	      $(DESTDIR)$(SYSCONFDIR)/mods-available/bastion.conf

setup:
	bash scripts/setup.sh

run: setup build
	$(PYTHON) scripts/run_demo.py

test: setup test-rust build build-test-hooks build-tools test-e2e

# Tools built from this workspace: a rustls client for post-quantum handshakes (tests) and a2md.
build-tools: build

test-rust:
	$(CARGO) test --workspace --release

test-e2e:
	$(PYTHON) -m pytest -q tests $(PYTEST_ARGS)

bench: setup build
	$(PYTHON) bench/run.py

# Encrypted FastCGI vs mod_proxy_fcgi (key server, memcached and the FastCGI app are started).
bench-fcgi: setup build
	$(PYTHON) bench/fcgi.py

# Managed domains: time from start to the first request with the issued certificate, ACME requests.
bench-md: setup build
	$(PYTHON) bench/md.py

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --release -- -D warnings

clean:
	$(CARGO) clean
	rm -rf build
