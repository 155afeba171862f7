//! The one rule for text that a client (or another module) chose and a person reads: software,
//! version, device, URI, OAuth client name, legacy resource, and ids as shown.
//!
//! - C0 and C1 controls, DEL, Unicode format characters (bidi controls, zero-width characters,
//!   byte order marks, tags) and noncharacters are removed;
//! - line breaks (LF, CR, CRLF, NEL, U+2028, U+2029) and TAB become one space each, so a value
//!   never spans lines or columns and never starts a paragraph of its own.
//!
//! Nothing else changes: spaces are neither trimmed nor collapsed, so that the rule is also the
//! canonical form of an id ([`canonical_id`]): the id as a person copies it from any listing,
//! and as an XML parser reads it back from an attribute (TAB, LF and CR become spaces there).
//!
//! The same characters make a new SASL2 client id unusable ([`id_character_problem`]): an id
//! that passes is unchanged by this rule, so every id stored from now on reads back exactly.

use std::borrow::Cow;

/// What the rule does with one character.
enum Treatment {
    Keep,
    Space,
    Drop,
}

/// Unicode 15.1's General_Category=Cf (format characters): bidi controls, zero-width
/// characters, invisible operators, byte order mark, tags, and the prepended concatenation
/// marks. Sorted ranges, inclusive.
const FORMAT_CHARACTERS: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

pub fn is_format_character(c: char) -> bool {
    let c = c as u32;
    FORMAT_CHARACTERS
        .binary_search_by(|&(low, high)| {
            if high < c {
                std::cmp::Ordering::Less
            } else if low > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// U+FDD0–U+FDEF and the last two code points of every plane.
pub fn is_noncharacter(c: char) -> bool {
    let c = c as u32;
    (0xFDD0..=0xFDEF).contains(&c) || c & 0xFFFE == 0xFFFE
}

fn treatment(c: char) -> Treatment {
    match c {
        '\t' | '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}' => Treatment::Space,
        c if c.is_control() => Treatment::Drop, // C0, DEL, C1
        c if is_format_character(c) || is_noncharacter(c) => Treatment::Drop,
        _ => Treatment::Keep,
    }
}

/// Whether the rule leaves `text` as it is.
pub fn is_clean(text: &str) -> bool {
    text.chars().all(|c| matches!(treatment(c), Treatment::Keep))
}

/// `text` as a person may read it (see the module's description).
pub fn for_people(text: &str) -> Cow<'_, str> {
    if is_clean(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut previous = None;
    for c in text.chars() {
        match treatment(c) {
            Treatment::Keep => out.push(c),
            // CRLF is one line break.
            Treatment::Space if c == '\n' && previous == Some('\r') => {}
            Treatment::Space => out.push(' '),
            Treatment::Drop => {}
        }
        previous = Some(c);
    }
    Cow::Owned(out)
}

/// [`for_people`] for an owned string, without copying a clean one.
pub fn owned_for_people(text: String) -> String {
    match for_people(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(clean) => clean,
    }
}

/// The form under which an id is matched: two ids are the same client's when their canonical
/// forms are equal. For every id a login can use today it is the id itself.
pub fn canonical_id(id: &str) -> Cow<'_, str> {
    for_people(id)
}

/// Why a new client id cannot be used because of a character in it, if it cannot.
pub fn id_character_problem(id: &str) -> Option<&'static str> {
    let bad = id.chars().find(|&c| !matches!(treatment(c), Treatment::Keep))?;
    Some(if matches!(bad, '\t' | '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}') {
        "Client identifier must not contain line breaks or tabs"
    } else if bad.is_control() {
        "Client identifier must not contain control characters"
    } else if is_noncharacter(bad) {
        "Client identifier must not contain Unicode noncharacters"
    } else {
        "Client identifier must not contain invisible or text-direction characters"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_and_tabs_become_one_space_each() {
        assert_eq!(for_people("a\tb\nc\rd\r\ne\u{85}f\u{2028}g\u{2029}h"), "a b c d e f g h");
        assert_eq!(for_people("two\n\nlines"), "two  lines");
    }

    #[test]
    fn controls_and_format_characters_are_removed() {
        assert_eq!(for_people("\u{1b}[31mred\u{7}\0\u{8}\u{7f}\u{9b}"), "[31mred");
        assert_eq!(for_people("evil\u{202E}txt.exe\u{2066}x\u{2069}"), "eviltxt.exex");
        assert_eq!(for_people("zero\u{200B}width\u{FEFF}\u{200D}"), "zerowidth");
        assert_eq!(for_people("non\u{FFFE}\u{FDD0}\u{10FFFF}char"), "nonchar");
    }

    #[test]
    fn everything_else_is_kept_as_it_is() {
        for text in ["Gajim 1.9", "  spaced  out  ", "Conversations — Pixel 8", "日本語 \u{e9}\u{301}", "\u{1F600}\u{FE0F}", "\u{FFFD}"] {
            assert!(is_clean(text), "{text:?}");
            assert!(matches!(for_people(text), Cow::Borrowed(_)));
        }
    }

    #[test]
    fn the_format_table_is_sorted_and_finds_its_ends() {
        assert!(FORMAT_CHARACTERS.windows(2).all(|w| w[0].1 < w[1].0));
        for &(low, high) in FORMAT_CHARACTERS {
            assert!(is_format_character(char::from_u32(low).unwrap()));
            assert!(is_format_character(char::from_u32(high).unwrap()));
        }
        assert!(!is_format_character('a') && !is_format_character('\u{200A}') && !is_format_character('\u{2065}'));
    }

    #[test]
    fn ids_are_refused_for_what_the_rule_would_change() {
        assert_eq!(id_character_problem("conversations-1f3a"), None);
        assert_eq!(id_character_problem("with space"), None);
        assert_eq!(id_character_problem("a\tb"), Some("Client identifier must not contain line breaks or tabs"));
        assert_eq!(id_character_problem("a\u{2028}"), Some("Client identifier must not contain line breaks or tabs"));
        assert_eq!(id_character_problem("a\u{1b}"), Some("Client identifier must not contain control characters"));
        assert_eq!(id_character_problem("a\u{202E}"), Some("Client identifier must not contain invisible or text-direction characters"));
        assert_eq!(id_character_problem("a\u{FFFF}"), Some("Client identifier must not contain Unicode noncharacters"));
    }
}
