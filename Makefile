# mod_client_management — see README.md.
.PHONY: all deps build plugin run test test-rust test-lua test-e2e test-e2e-all test-trunk trunk test-cam-captures test-dist bench bench-e2e bench-compare rock dist version clean

all: plugin

# Debian packages (Prosody 13 from bookworm-backports, Lua 5.4, busted): installed if missing.
deps:
	@scripts/install-deps.sh

build:
	cargo build --release --features module

plugin:
	@scripts/build-plugin.sh

run: deps plugin
	@scripts/run-local.sh

# The e2e suite runs on every storage backend (internal, SQLite, PostgreSQL, memory) and installs
# the rock of `make dist` by name, then once more against Prosody trunk (test-trunk); test-dist
# builds the source rock outside the checkout.
test: deps plugin test-rust test-lua dist test-e2e-all test-trunk test-cam-captures test-dist

test-rust:
	cargo test
	cargo test --features embedded-lua --lib --tests

test-lua: plugin
	lua5.4 /usr/bin/busted

# One backend: E2E_STORAGE=internal (default) | sqlite | postgres | memory.
test-e2e: plugin dist
	E2E_REQUIRE_DIST=1 tests/e2e/run.sh

# Every backend in turn (E2E_STORAGES to choose), with a summary.
test-e2e-all: plugin dist
	E2E_REQUIRE_DIST=1 tests/e2e/run-all.sh

# The e2e suite against Prosody trunk, built (once per tarball, into build/trunk/) from
# ../shared/prosody-trunk/*.tar.gz or TRUNK_TARBALL=/path/to/snapshot.tar.gz, on internal storage
# (E2E_STORAGES to choose), with only mod_sasl2* of prosody-modules beside it.
# Its captures (build/e2e-captures-trunk/) go through the same parsers as test-cam-captures.
test-trunk: deps plugin dist
	E2E_REQUIRE_DIST=1 E2E_PROSODY=trunk tests/e2e/run-all.sh
	CAM_CAPTURE_DIR=build/e2e-captures-trunk/cam ADHOC_CAPTURE_DIR=build/e2e-captures-trunk/adhoc \
		cargo test --test cam_captures --test adhoc_captures

# Just build that trunk (prints its directory: env, BUILD-INFO, prefix/).
trunk: deps
	@scripts/build-trunk.sh

# make dist's artifacts used as a packager would, outside the checkout (two cargo builds).
test-dist: dist
	tests/dist/check.sh

# Every urn:xmpp:cam:0 reply and every XEP-0050 command reply (with its data forms) the e2e
# tests captured, parsed by xmpp-parsers (pedantic).
test-cam-captures:
	cargo test --test cam_captures --test adhoc_captures

# Criterion (core and Lua crossing), then a real Prosody measured by a real client.
bench: deps plugin
	cargo bench --features embedded-lua
	node benches/e2e/run.js

bench-e2e: deps plugin
	node benches/e2e/run.js

# The end-to-end benchmark of BASE (a git revision, default main) against this working tree's
# build, in the same run: `make bench-compare BASE=HEAD~3`.
BASE ?= main
bench-compare: deps plugin
	benches/e2e/build-baseline.sh $(BASE) build/bench/before
	BENCH_PLUGINS="before=build/bench/before,after=build/plugin" node benches/e2e/run.js

rock: plugin
	@scripts/build-rock.sh

# Release artifacts in build/dist/: source tarball + rockspec, binary rock, rocks-server directory.
dist: plugin
	@scripts/dist.sh

# The version (Cargo.toml's), as every script reads it.
version:
	@scripts/version.sh

clean:
	cargo clean
	rm -rf build .run
