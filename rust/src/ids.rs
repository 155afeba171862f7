//! Identifiers: generated client ids and the keys mod_sasl2_fast files tokens under.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Length of a generated client id: 9 random bytes in base64url, the shape of
/// Prosody's `util.id.short()`.
pub const GENERATED_ID_LEN: usize = 12;

/// A fresh id for a client that did not name itself (legacy SASL path).
pub fn generate_client_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 9];
    getrandom::fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// `hash.sha256(client_id, true)` as mod_sasl2_fast computes it: lowercase hex.
pub fn fast_token_key_prefix(client_id: &str) -> String {
    format!("{:x}", Sha256::digest(client_id.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_the_shape_of_util_id_short() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let id = generate_client_id().unwrap();
            assert_eq!(id.len(), GENERATED_ID_LEN);
            assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{id}");
            assert!(seen.insert(id), "ids repeat");
        }
    }

    #[test]
    fn fast_key_matches_the_stored_fixture() {
        // fixtures/community-module-store/fast_tokens/bob.dat holds the token of "rig-bob-fast".
        assert_eq!(
            fast_token_key_prefix("rig-bob-fast"),
            "320194f1cc31852eceecde43f9fb36244cbcca75569d7194c03a4b1476c7a7d0"
        );
    }
}
