# mod_client_management — see README.md.
.PHONY: all deps build plugin run test test-rust test-lua test-e2e test-cam-captures bench bench-e2e rock clean

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

rock: plugin
	@scripts/build-rock.sh

clean:
	cargo clean
	rm -rf build .run
