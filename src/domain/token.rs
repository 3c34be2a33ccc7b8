//! Invitation tokens (R12). A token is `HMAC-SHA256(key, invitation id || nonce)`
//! where the nonce is 128 random bits kept with the invitation and the key is a
//! daemon secret. Only the token's SHA-256 (for look-ups) and the nonce are stored,
//! yet a resend (R14) can put the *same* token in the email again: the daemon
//! derives it anew instead of keeping it. `Debug` never prints a token.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngExt as _;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The secret a recipient presents to accept or decline.
#[derive(Clone, PartialEq, Eq)]
pub struct InvitationToken(String);

/// What the store keeps of a token.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TokenHash(pub Vec<u8>);

/// The per-invitation randomness of a token.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TokenNonce(pub Vec<u8>);

impl TokenNonce {
    pub fn generate() -> TokenNonce {
        let bytes: [u8; 16] = rand::rng().random();
        TokenNonce(bytes.to_vec())
    }
}

const TOKEN_CHARS: usize = 43; // base64url of 32 bytes, no padding

impl InvitationToken {
    /// The token of one invitation under the daemon's token key.
    pub fn derive(key: &[u8], invitation: Uuid, nonce: &TokenNonce) -> InvitationToken {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
        mac.update(b"invited/invitation-token/v1\0");
        mac.update(invitation.as_bytes());
        mac.update(&nonce.0);
        InvitationToken(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    #[cfg(test)]
    fn generate() -> InvitationToken {
        InvitationToken::derive(b"test key", Uuid::now_v7(), &TokenNonce::generate())
    }

    /// Parses a presented token. A string that cannot be a token is refused
    /// before any lookup, with the same answer as an unknown one.
    pub fn parse(raw: &str) -> Option<InvitationToken> {
        let ok = raw.len() == TOKEN_CHARS
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| InvitationToken(raw.to_string()))
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).to_vec())
    }

    /// The secret itself, for the one place that needs it: the accept link.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for InvitationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InvitationToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_parse_back_and_hash_stably() {
        let a = InvitationToken::generate();
        let b = InvitationToken::generate();
        assert_ne!(a, b);
        let parsed = InvitationToken::parse(a.expose()).unwrap();
        assert_eq!(parsed.hash(), a.hash());
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash().0.len(), 32);
    }

    #[test]
    fn derivation_is_stable_and_depends_on_key_id_and_nonce() {
        let id = Uuid::now_v7();
        let nonce = TokenNonce::generate();
        let t = InvitationToken::derive(b"k1", id, &nonce);
        assert_eq!(t, InvitationToken::derive(b"k1", id, &nonce));
        assert_ne!(t, InvitationToken::derive(b"k2", id, &nonce));
        assert_ne!(t, InvitationToken::derive(b"k1", Uuid::now_v7(), &nonce));
        assert_ne!(
            t,
            InvitationToken::derive(b"k1", id, &TokenNonce::generate())
        );
        assert!(InvitationToken::parse(t.expose()).is_some());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let t = InvitationToken::generate();
        assert!(!format!("{t:?}").contains(t.expose()));
    }

    #[test]
    fn junk_is_not_a_token() {
        assert!(InvitationToken::parse("").is_none());
        assert!(InvitationToken::parse("abc").is_none());
        assert!(InvitationToken::parse(&"!".repeat(43)).is_none());
    }
}
