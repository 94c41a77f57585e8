//! The access token: obtained by client-credentials login, cached, and renewed five
//! minutes before its JWT `exp`, as the official client does.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Renew when the token expires sooner than this.
pub const RENEW_MARGIN: Duration = Duration::from_secs(300);

#[derive(Clone)]
pub struct Token {
    pub bearer: String,
    pub expires: SystemTime,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("expires", &self.expires).finish_non_exhaustive()
    }
}

impl Token {
    pub fn fresh(&self) -> bool {
        self.expires > SystemTime::now() + RENEW_MARGIN
    }
}

/// The login answer; exactly these fields, as the API defines them.
#[derive(Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[allow(dead_code)]
    pub expires_in: Option<i64>,
}

/// Reads `exp` from the JWT payload without checking the signature (the client cannot).
pub fn expiry(jwt: &str) -> Option<SystemTime> {
    #[derive(Deserialize)]
    struct Claims {
        exp: u64,
    }
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(claims.exp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_comes_from_the_jwt_payload() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"exp":1700000000,"sub":"x"}"#);
        let jwt = format!("e30.{payload}.sig");
        assert_eq!(expiry(&jwt), Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
        assert_eq!(expiry("not-a-jwt"), None);
    }
}
