//! The regions whose Amazon RDS certificate authorities the functions trust: those of the
//! bundle in `assets/` (the one the functions embed), read from its certificates' names
//! (`Amazon RDS <region> Root CA ...`). A region the bundle lacks would have every
//! connection to its database refused as untrusted, so synth refuses it first.

use std::collections::BTreeSet;

/// The bundle the functions embed (`lambdas/functions/src/database.rs` includes the same file).
pub const BUNDLE: &str = include_str!("../../../assets/rds-ca-bundle.pem");

/// Every region named by a certificate of `pem`.
pub fn regions(pem: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for block in pem.split("-----BEGIN CERTIFICATE-----").skip(1) {
        let body = block.split("-----END CERTIFICATE-----").next().unwrap_or_default();
        let Some(der) = decode_base64(body) else { continue };
        let mut rest = der.as_slice();
        const MARK: &[u8] = b"Amazon RDS ";
        while let Some(at) = rest.windows(MARK.len()).position(|w| w == MARK) {
            rest = &rest[at + MARK.len()..];
            let word: Vec<u8> = rest.iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'-').copied().collect();
            let word = String::from_utf8(word).unwrap_or_default();
            if is_region(&word) {
                found.insert(word);
            }
        }
    }
    found
}

/// `us-east-1`, `us-gov-west-1`, `ap-southeast-7`: two or more words, then a number.
fn is_region(word: &str) -> bool {
    let parts: Vec<&str> = word.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

/// Standard base64 with its line breaks; `None` when it is not.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let symbols: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace() && *b != b'=').collect();
    let mut out = Vec::with_capacity(symbols.len() * 3 / 4);
    for chunk in symbols.chunks(4) {
        let mut bits = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            bits |= value(*c)? << (18 - 6 * i);
        }
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_names_the_regions_it_covers() {
        let covered = regions(BUNDLE);
        for region in ["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2", "ca-central-1", "me-central-1"] {
            assert!(covered.contains(region), "{region}: {covered:?}");
        }
        // The newest regions of the refreshed bundle (issue 16 found them missing).
        for region in ["ca-west-1", "il-central-1", "mx-central-1", "ap-southeast-5", "ap-southeast-7"] {
            assert!(covered.contains(region), "{region}: {covered:?}");
        }
        // Beta and Preview authorities name no region of their own; GovCloud's are in
        // another bundle; Taipei is newer than this one.
        assert!(!covered.contains("ap-east-2") && !covered.contains("us-gov-west-1"), "{covered:?}");
        assert!(covered.iter().all(|r| is_region(r)), "{covered:?}");
    }

    #[test]
    fn base64_decodes_as_the_standard_says() {
        assert_eq!(decode_base64("TWFu").unwrap(), b"Man");
        assert_eq!(decode_base64("TWE=").unwrap(), b"Ma");
        assert_eq!(decode_base64("TQ==\n").unwrap(), b"M");
        assert!(decode_base64("T!==").is_none());
    }
}
