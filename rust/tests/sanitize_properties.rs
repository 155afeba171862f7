//! Properties of the one sanitiser and of ids (ARCHITECTURE.md §11), over generated text: any Unicode,
//! and text built from the characters that matter (controls, line breaks, bidi and zero-width
//! characters, noncharacters, XML's specials).

use client_management::listing::list_entries;
use client_management::model::{client_id_problem, AccountFacts, ClientRecord};
use client_management::render::{render_clients, Protocol};
use client_management::sanitize::{canonical_id, for_people, is_clean};
use proptest::prelude::*;
use xmpp_parsers::minidom::Element;

/// Characters a hostile client would pick, mixed with ordinary ones.
fn hostile_char() -> impl Strategy<Value = char> {
    prop_oneof![
        prop::sample::select(vec![
            '\t', '\n', '\r', '\0', '\u{7}', '\u{8}', '\u{1b}', '\u{7f}', '\u{85}', '\u{9b}', '\u{ad}', '\u{200b}', '\u{200d}',
            '\u{200e}', '\u{2028}', '\u{2029}', '\u{202e}', '\u{2066}', '\u{2069}', '\u{feff}', '\u{fdd0}', '\u{fffe}',
            '\u{ffff}', '\u{10ffff}', '\u{e0041}', '&', '<', '>', '\'', '"', '|', ' ', '/', 'a', 'Z', '\u{e9}', '\u{1f600}',
        ]),
        any::<char>(),
    ]
}

fn hostile_text() -> impl Strategy<Value = String> {
    prop::collection::vec(hostile_char(), 0..40).prop_map(|chars| chars.into_iter().collect())
}

/// The `<clients>` reply listing one password client with this stored id, parsed back by an
/// XML parser: the `id` attribute as any reader gets it.
fn id_as_parsed(id: &str) -> String {
    let facts = AccountFacts {
        records: vec![ClientRecord { id: id.to_owned(), mechanisms: vec![("PLAIN".into(), 1)], ..Default::default() }],
        ..Default::default()
    };
    let xml = render_clients(&list_entries(&facts), Protocol::Cam).to_xml();
    let root: Element = xml.parse().unwrap_or_else(|e| panic!("not well-formed ({e}): {xml:?}"));
    let client = root.children().next().expect("one client");
    client.attr("id").expect("an id attribute").to_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn sanitised_text_holds_no_forbidden_character(text in hostile_text()) {
        let clean = for_people(&text);
        prop_assert!(is_clean(&clean), "{clean:?}");
        prop_assert!(!clean.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200b}' | '\u{feff}')), "{clean:?}");
    }

    #[test]
    fn sanitising_is_idempotent(text in hostile_text()) {
        let once = for_people(&text).into_owned();
        prop_assert_eq!(for_people(&once).into_owned(), once);
    }

    #[test]
    fn an_accepted_id_is_shown_as_it_is_and_reads_back_byte_exact(
        id in hostile_text().prop_map(|text| for_people(&text).into_owned()).prop_filter("a usable id", |id| !id.is_empty())
    ) {
        // Whatever the sanitiser leaves is a usable id (the refusal rule and the sanitiser agree).
        prop_assert_eq!(client_id_problem(id.as_bytes()), None);
        let canonical = canonical_id(&id).into_owned();
        prop_assert_eq!(&canonical, &id);
        prop_assert_eq!(id_as_parsed(&id), format!("client/{id}"));
    }

    #[test]
    fn any_stored_id_reads_back_as_its_canonical_form(id in hostile_text()) {
        prop_assume!(!id.is_empty());
        let parsed = id_as_parsed(&id);
        let read = parsed.strip_prefix("client/").expect("the prefix");
        let canonical = canonical_id(&id).into_owned();
        let read_canonical = canonical_id(read).into_owned();
        prop_assert_eq!(&read_canonical, &canonical);
        prop_assert_eq!(read, canonical.as_str());
    }
}
