# mod_client_management — see README.md.
.PHONY: all deps build plugin run test test-rust test-lua test-e2e test-cam-captures bench bench-e2e bench-compare rock clean

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

test: deps plugin test-rust test-lua test-e2e test-cam-captures

test-rust:
	cargo test
	cargo test --features embedded-lua --lib --tests

test-lua: plugin
	lua5.4 /usr/bin/busted

test-e2e: plugin
	tests/e2e/run.sh

# Every urn:xmpp:cam:0 reply the e2e tests captured, parsed by xmpp-parsers (pedantic).
test-cam-captures:
	cargo test --test cam_captures

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

clean:
	cargo clean
	rm -rf build .run
