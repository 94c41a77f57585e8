//! A login password as PostgreSQL keeps it: a SCRAM-SHA-256 verifier (RFC 5802, RFC 7677),
//! computed here, as `psql`'s `\password` does. The password itself never reaches the
//! server, whose statement log could keep it; the verifier lets the server check a login
//! and does not give the password back.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};

/// A password, never shown: its `Debug` says only that there is one.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

/// PostgreSQL's own default (`scram_iterations`).
pub const ITERATIONS: u32 = 4096;

/// The verifier of `password` with a fresh random salt.
pub fn verifier(password: &Password) -> String {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the operating system gives random bytes");
    verifier_with(password, &salt, ITERATIONS)
}

/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, as `pg_authid` holds it.
pub fn verifier_with(password: &Password, salt: &[u8], iterations: u32) -> String {
    // The server prepares what a client sends with SASLprep, and uses the bytes as they
    // are when that fails; so does this.
    let prepared = stringprep::saslprep(&password.0).map(|p| p.into_owned()).unwrap_or_else(|_| password.0.clone());
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(prepared.as_bytes(), salt, iterations, &mut salted);
    let mac = |message: &[u8]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(&salted).expect("HMAC takes a key of any length");
        mac.update(message);
        mac.finalize().into_bytes()
    };
    let stored_key = Sha256::digest(mac(b"Client Key"));
    let server_key = mac(b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a verifier computed apart, with Python's `hashlib.pbkdf2_hmac` and `hmac`.
    #[test]
    fn the_verifier_is_the_one_rfc_7677_describes() {
        let salt: Vec<u8> = (0..16).collect();
        assert_eq!(
            verifier_with(&Password::new("correct horse battery staple"), &salt, 4096),
            "SCRAM-SHA-256$4096:AAECAwQFBgcICQoLDA0ODw==$ONYbSJBXtKl6bP6PVqw8pm9e7EiacprLnoUQPFS80Hw=:IPOtHuGJ2HifEQg74W2XXqqCrCyQG55GbPRHa6g6n9w="
        );
    }

    #[test]
    fn each_verifier_has_a_salt_of_its_own_and_none_shows_the_password() {
        let password = Password::new("hunter2hunter2");
        let (a, b) = (verifier(&password), verifier(&password));
        assert_ne!(a, b);
        assert!(!a.contains("hunter2") && !format!("{password:?}").contains("hunter2"));
    }
}
