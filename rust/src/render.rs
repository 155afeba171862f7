//! The `<clients>` reply as a plain element tree, for both protocol namespaces. The glue turns
//! the tree into util.stanza objects; tests serialize it to XML. What differs between the
//! namespaces is decided here and nowhere else.

use std::fmt::Write as _;

use crate::listing::Entry;
use crate::model::Timestamp;
use crate::sanitize::for_people;

pub const NS_PROSODY: &str = "xmpp:prosody.im/protocol/manage-clients";
pub const NS_CAM: &str = "urn:xmpp:cam:0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The community module's namespace, output kept compatible with it.
    Prosody,
    /// XEP-0494 v0.1.0.
    Cam,
}

impl Protocol {
    pub fn from_namespace(xmlns: &str) -> Option<Protocol> {
        match xmlns {
            NS_PROSODY => Some(Protocol::Prosody),
            NS_CAM => Some(Protocol::Cam),
            _ => None,
        }
    }

    pub fn namespace(self) -> &'static str {
        match self {
            Protocol::Prosody => NS_PROSODY,
            Protocol::Cam => NS_CAM,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Node {
    Element(Element),
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Element {
    pub name: &'static str,
    /// In document order; `xmlns` is set on the root only, children inherit it.
    pub attrs: Vec<(&'static str, String)>,
    pub children: Vec<Node>,
}

impl Element {
    fn new(name: &'static str) -> Self {
        Element { name, attrs: Vec::new(), children: Vec::new() }
    }

    fn attr(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.attrs.push((name, xml_safe(value.into())));
        self
    }

    fn child(&mut self, child: Element) {
        self.children.push(Node::Element(child));
    }

    fn text_child(&mut self, name: &'static str, text: impl Into<String>) {
        let mut child = Element::new(name);
        child.text(text);
        self.child(child);
    }

    fn text(&mut self, text: impl Into<String>) {
        self.children.push(Node::Text(xml_safe(text.into())));
    }

    fn flag(&mut self, name: &'static str) {
        self.child(Element::new(name));
    }

    /// Serialized XML: the list reply written to a stream no `stanzas/out` filter reads
    /// (attributes in document order, `'"<>&` escaped, an element without children as
    /// `<name/>`, as util.stanza writes them).
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        self.write_xml(&mut out);
        out
    }

    fn write_xml(&self, out: &mut String) {
        out.push('<');
        out.push_str(self.name);
        for (name, value) in &self.attrs {
            out.push(' ');
            out.push_str(name);
            out.push_str("='");
            escape_into(out, value);
            out.push('\'');
        }
        if self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        for child in &self.children {
            match child {
                Node::Element(element) => element.write_xml(out),
                Node::Text(text) => escape_into(out, text),
            }
        }
        let _ = write!(out, "</{}>", self.name);
    }
}

/// Characters XML 1.0 cannot carry at all (controls, U+FFFE, U+FFFF). Stored text comes from
/// clients and OAuth registrations and may hold them; one would break the reader's stream.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

/// The text with characters XML cannot carry dropped.
pub fn xml_safe(text: String) -> String {
    if text.chars().all(is_xml_char) {
        text
    } else {
        text.chars().filter(|&c| is_xml_char(c)).collect()
    }
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// XEP-0082 `YYYY-MM-DDThh:mm:ssZ` in UTC; `None` for times no calendar can show.
pub fn format_datetime(timestamp: Timestamp) -> Option<String> {
    crate::model::format_time(timestamp, time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z"))
}

fn render_client(entry: &Entry, protocol: Protocol) -> Element {
    let mut client = Element::new("client")
        .attr("connected", if entry.access.connected { "true" } else { "false" })
        .attr("id", entry.listed_id())
        .attr("type", entry.kind.protocol_type());

    // Unknown times are left out rather than shown as "now".
    if let Some(text) = entry.first_seen.and_then(format_datetime) {
        client.text_child("first-seen", text);
    }
    if let Some(text) = entry.last_seen.and_then(format_datetime) {
        client.text_child("last-seen", text);
    }

    let mut auth = Element::new("auth");
    if entry.access.password.is_some() {
        auth.flag("password");
    }
    let has_grant = entry.access.grant.is_some();
    match protocol {
        Protocol::Prosody => {
            if has_grant {
                auth.flag("bearer-token");
            }
            if entry.access.fast {
                auth.flag("fast");
            }
        }
        Protocol::Cam => {
            if has_grant {
                auth.flag("grant");
            }
            if entry.access.fast {
                auth.flag("fast");
            }
        }
    }
    client.child(auth);

    // What the client chose goes through the one sanitiser again as it is shown: records and
    // grants are cleaned when read, this covers anything that reached the list another way.
    let agent = entry.user_agent;
    let human = |text: &String| for_people(text).into_owned();
    let mut user_agent = Element::new("user-agent");
    match protocol {
        Protocol::Prosody => {
            if let Some(software) = &agent.software {
                let mut element = Element::new("software");
                if let Some(id) = &agent.software_id {
                    element = element.attr("id", human(id));
                }
                if let Some(version) = &agent.software_version {
                    element = element.attr("version", human(version));
                }
                element.text(human(software));
                user_agent.child(element);
            }
        }
        Protocol::Cam => {
            client.child(Element::new("permission").attr("status", entry.permission.as_str()));
            // XEP-0494 requires <software/>, and allows no attributes on it.
            user_agent.text_child("software", agent.software.as_ref().map(human).unwrap_or_default());
        }
    }
    if let Some(uri) = &agent.uri {
        user_agent.text_child("uri", human(uri));
    }
    if let Some(device) = &agent.device {
        user_agent.text_child("device", human(device));
    }
    client.child(user_agent);
    client
}

/// `<clients xmlns=…>` with one `<client>` per entry, in list order.
/// The `<clients>` element of a list request: the account's listing, in `protocol`.
pub fn render_listing(facts: &crate::model::AccountFacts, protocol: Protocol) -> Element {
    render_clients(&crate::listing::list_entries(facts), protocol)
}

pub fn render_clients(entries: &[Entry], protocol: Protocol) -> Element {
    let mut clients = Element::new("clients").attr("xmlns", protocol.namespace());
    clients.children.reserve(entries.len());
    for entry in entries {
        clients.child(render_client(entry, protocol));
    }
    clients
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listing::list_entries;
    use crate::model::{AccountFacts, ClientRecord, Grant, Moment, SessionFact, UserAgent};

    #[test]
    fn characters_xml_cannot_carry_are_dropped() {
        assert_eq!(xml_safe("Evil\u{1}Cli\0ent\u{1b}\u{FFFF}".into()), "EvilClient");
        assert_eq!(xml_safe("tab\tok \u{e9}\u{1F600}".into()), "tab\tok \u{e9}\u{1F600}");
        let mut facts = facts();
        facts.records[0].user_agent.device = Some("Dev\0ice".into());
        facts.records[0].user_agent.software_version = Some("1\u{2}".into());
        let xml = render_clients(&list_entries(&facts), Protocol::Prosody).to_xml();
        assert!(xml.contains("<device>Device</device>") && xml.contains("version='1'"), "{xml}");
    }

    #[test]
    fn human_fields_are_sanitised_and_ids_shown_in_canonical_form() {
        let mut facts = facts();
        facts.records[0].id = "lap\ttop\u{202E}".into();
        facts.moment.sessions[0].client_id = Some("lap\ttop\u{202E}".into());
        facts.records[0].user_agent = UserAgent {
            software: Some("Chat\n\nSECURITY NOTICE\u{1b}[2J".into()),
            software_id: Some("id\u{200B}".into()),
            software_version: Some("1\r\n2".into()),
            uri: Some("https://x.invalid/\u{2028}".into()),
            device: Some("Pho\u{2066}ne\u{85}".into()),
        };
        for protocol in [Protocol::Prosody, Protocol::Cam] {
            let xml = render_clients(&list_entries(&facts), protocol).to_xml();
            assert!(xml.contains("id='client/lap top'"), "{xml}");
            assert!(xml.contains(">Chat  SECURITY NOTICE[2J</software>"), "{xml}");
            assert!(xml.contains("<uri>https://x.invalid/ </uri><device>Phone </device>"), "{xml}");
            if protocol == Protocol::Prosody {
                assert!(xml.contains("<software id='id' version='1 2'>"), "{xml}");
            }
        }
    }

    #[test]
    fn datetimes_are_utc_seconds_with_z() {
        assert_eq!(format_datetime(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(format_datetime(1_795_742_465).as_deref(), Some("2026-11-27T01:21:05Z"));
        assert_eq!(format_datetime(i64::MAX), None);
        assert_eq!(format_datetime(-1_000_000_000_000), None);
    }

    fn facts() -> AccountFacts {
        AccountFacts {
            records: vec![ClientRecord {
                id: "laptop".into(),
                first_seen: Some(0),
                last_seen: None,
                full_jid: Some("u@h/r".into()),
                mechanisms: vec![("SCRAM-SHA-1".into(), 0)],
                user_agent: UserAgent {
                    software: Some("Chat <&>".into()),
                    software_id: Some("chat".into()),
                    software_version: Some("1.0".into()),
                    device: Some("Laptop".into()),
                    ..Default::default()
                },
                ..Default::default()
            }],
            grants: vec![Grant { id: "g".into(), created: Some(60.0), accessed: Some(120.0), ..Default::default() }],
            moment: Moment {
                sessions: vec![SessionFact {
                    full_jid: Some("u@h/r".into()),
                    client_id: Some("laptop".into()),
                    ..Default::default()
                }],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn prosody_namespace_keeps_the_community_shape() {
        let facts = facts();
        let xml = render_clients(&list_entries(&facts), Protocol::Prosody).to_xml();
        assert_eq!(
            xml,
            "<clients xmlns='xmpp:prosody.im/protocol/manage-clients'>\
             <client connected='true' id='client/laptop' type='session'>\
             <first-seen>1970-01-01T00:00:00Z</first-seen>\
             <auth><password/></auth>\
             <user-agent><software id='chat' version='1.0'>Chat &lt;&amp;&gt;</software><device>Laptop</device></user-agent>\
             </client>\
             <client connected='false' id='grant/g' type='access'>\
             <first-seen>1970-01-01T00:01:00Z</first-seen><last-seen>1970-01-01T00:02:00Z</last-seen>\
             <auth><bearer-token/></auth><user-agent/>\
             </client></clients>"
        );
    }

    #[test]
    fn cam_namespace_adds_permission_and_always_names_the_software() {
        let facts = facts();
        let xml = render_clients(&list_entries(&facts), Protocol::Cam).to_xml();
        assert!(xml.starts_with("<clients xmlns='urn:xmpp:cam:0'>"));
        assert!(xml.contains("<permission status='unrestricted'/><user-agent><software>Chat &lt;&amp;&gt;</software><device>Laptop</device></user-agent>"), "{xml}");
        assert!(xml.contains("<auth><grant/></auth><permission status='normal'/><user-agent><software></software></user-agent>"), "{xml}");
    }
}
