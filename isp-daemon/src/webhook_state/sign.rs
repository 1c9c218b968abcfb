//! Standard Webhooks signatures (<https://www.standardwebhooks.com>, the
//! spec the reference `standardwebhooks` packages verify). Pure: no IO.
//!
//! A secret is `whsec_` + base64 of 24–64 random bytes; the HMAC key is
//! the decoded bytes. The signed content is `"{webhook-id}.{webhook-timestamp}.{body}"`;
//! `webhook-signature` is `v1,<base64 HMAC-SHA256>`, one per secret,
//! separated by spaces (several while a secret is being rotated).

use base64::Engine as _;
use hmac::{KeyInit, Mac};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The prefix of every secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Why a secret cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Not `whsec_...`.
    #[error("a webhook secret starts with `whsec_` followed by base64; this one does not start with `whsec_`")]
    NoPrefix,
    /// The part after the prefix is not base64.
    #[error("the part after `whsec_` is not standard base64: {0}")]
    NotBase64(String),
    /// Too short to be a secret.
    #[error("the secret decodes to {0} bytes; use at least 24 random bytes")]
    TooShort(usize),
}

/// The HMAC key of a `whsec_` secret.
pub fn key_of(secret: &str) -> Result<Vec<u8>, SecretError> {
    let encoded = secret
        .strip_prefix(SECRET_PREFIX)
        .ok_or(SecretError::NoPrefix)?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| SecretError::NotBase64(e.to_string()))?;
    if key.len() < 24 {
        return Err(SecretError::TooShort(key.len()));
    }
    Ok(key)
}

/// A new secret from `random` bytes.
pub fn secret_from(random: &[u8]) -> String {
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(random)
    )
}

/// The `webhook-signature` value for `body` sent as `id` at `timestamp`
/// (Unix seconds), one `v1,` entry per key, space-separated.
pub fn signature_header(keys: &[Vec<u8>], id: &str, timestamp: u64, body: &[u8]) -> String {
    keys.iter()
        .map(|key| {
            // An HMAC takes keys of any length.
            let mut mac = match <HmacSha256 as KeyInit>::new_from_slice(key) {
                Ok(mac) => mac,
                Err(_) => unreachable!("HMAC-SHA256 accepts any key length"),
            };
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference
    /// libraries' tests (secret, id, timestamp, payload, signature).
    #[test]
    fn signatures_match_the_specifications_example() {
        let key = key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("key");
        let header = signature_header(
            &[key],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn several_keys_give_several_space_separated_signatures() {
        let a = key_of(&secret_from(&[1; 32])).expect("a");
        let b = key_of(&secret_from(&[2; 32])).expect("b");
        let header = signature_header(&[a.clone(), b], "msg_1", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2, "{header}");
        assert_eq!(parts[0], signature_header(&[a], "msg_1", 1, b"{}"));
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
    }

    #[test]
    fn secrets_must_be_whsec_base64_of_enough_bytes() {
        assert_eq!(key_of("sk_abc"), Err(SecretError::NoPrefix));
        assert!(matches!(
            key_of("whsec_!!!"),
            Err(SecretError::NotBase64(_))
        ));
        assert_eq!(key_of("whsec_AAAA"), Err(SecretError::TooShort(3)));
        assert_eq!(key_of(&secret_from(&[7; 24])).map(|k| k.len()), Ok(24));
    }
}
