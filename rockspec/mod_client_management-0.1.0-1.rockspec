-- Build from a checkout with `luarocks make --lua-version=5.4 rockspec/mod_client_management-0.1.0-1.rockspec`
-- (needs cargo); `make rock` packs the result as a binary rock for `prosodyctl install`.
rockspec_format = "3.0"
package = "mod_client_management"
version = "0.1.0-1"
source = {
	url = "git+file://.";
}
description = {
	summary = "Prosody module: list and revoke the clients that have access to an account";
	detailed = [[
Drop-in replacement for the community mod_client_management with a native (Rust) core:
lists SASL2/legacy clients, FAST tokens and OAuth grants, revokes them, speaks both
xmpp:prosody.im/protocol/manage-clients and XEP-0494 (urn:xmpp:cam:0).
]];
	license = "MIT";
}
dependencies = {
	"lua >= 5.4";
}
build = {
	type = "command";
	build_command = "bash scripts/build-plugin.sh";
	install = {
		lua = {
			["mod_client_management"] = "lua/mod_client_management.lua";
		};
		lib = {
			["client_management"] = "build/plugin/mod_client_management/client_management.so";
		};
	};
}
