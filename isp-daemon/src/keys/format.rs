//! The text form of an API key secret, pure: `ispk_`, 30 random base62
//! characters, then the CRC32 of those 30 characters in 6 base62 characters
//! (the layout of GitHub's tokens). The prefix lets secret scanners find a
//! leaked key; the checksum lets them (and the daemon) tell a real key from
//! a look-alike without asking anyone.

/// What every key secret starts with.
pub const PREFIX: &str = "ispk_";
/// Random base62 characters after the prefix (30 × log2(62) ≈ 178 bits).
pub(super) const RANDOM_LEN: usize = 30;
/// Base62 characters of the CRC32 checksum (62^6 > 2^32).
pub(super) const CHECK_LEN: usize = 6;
/// The whole secret's length.
pub(super) const SECRET_LEN: usize = PREFIX.len() + RANDOM_LEN + CHECK_LEN;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a presented credential is not a well-formed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// It does not start with [`PREFIX`].
    #[error("it does not start with `{PREFIX}`")]
    Prefix,
    /// Its length is not 41 characters.
    #[error("it has {0} characters instead of {SECRET_LEN}")]
    Length(usize),
    /// A character outside `[0-9A-Za-z]` after the prefix.
    #[error("it has a character that is not a letter or digit after `{PREFIX}`")]
    Alphabet,
    /// The last 6 characters are not the checksum of the 30 before them.
    #[error("its checksum does not match (a character was changed or lost in copying)")]
    Checksum,
}

/// Maps random bytes to base62 characters without bias: bytes of 248 and
/// above are skipped (248 = 4 × 62). Returns `None` until `bytes` held
/// enough usable ones.
pub(super) fn random_part(bytes: &[u8]) -> Option<String> {
    let chars: String = bytes
        .iter()
        .filter(|b| **b < 248)
        .take(RANDOM_LEN)
        .map(|b| char::from(ALPHABET[usize::from(*b % 62)]))
        .collect();
    (chars.len() == RANDOM_LEN).then_some(chars)
}

/// The checksum of `random`: CRC32 (IEEE) in base62, 6 characters, zero-padded.
pub(super) fn checksum(random: &str) -> String {
    let mut n = crc32fast::hash(random.as_bytes());
    let mut out = [b'0'; CHECK_LEN];
    for slot in out.iter_mut().rev() {
        // n % 62 < 62, so the index is in range.
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    out.iter().map(|b| char::from(*b)).collect()
}

/// The full secret for a random part.
pub(super) fn secret(random: &str) -> String {
    format!("{PREFIX}{random}{}", checksum(random))
}

/// Checks that `presented` is shaped like a key secret, checksum included.
pub fn check_shape(presented: &str) -> Result<(), ShapeError> {
    let rest = presented.strip_prefix(PREFIX).ok_or(ShapeError::Prefix)?;
    if presented.len() != SECRET_LEN {
        return Err(ShapeError::Length(presented.chars().count()));
    }
    if !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ShapeError::Alphabet);
    }
    let (random, check) = rest.split_at(RANDOM_LEN);
    if checksum(random) != check {
        return Err(ShapeError::Checksum);
    }
    Ok(())
}

/// What a key list shows of a secret: the prefix and the last 4 characters
/// (part of the checksum, so nothing of the random part).
pub(super) fn hint(secret: &str) -> String {
    let tail = secret.get(secret.len().saturating_sub(4)..).unwrap_or("");
    format!("{PREFIX}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(presented: &str, expected: Result<(), ShapeError>) {
        assert_eq!(check_shape(presented), expected, "{presented:?}");
    }

    #[test]
    fn a_made_secret_has_the_prefix_the_length_and_a_matching_checksum() {
        let random = random_part(&[7u8; 64]).expect("enough bytes");
        let s = secret(&random);
        assert_eq!(s.len(), SECRET_LEN);
        assert!(s.starts_with("ispk_7777"), "{s}");
        check(&s, Ok(()));
        assert_eq!(hint(&s), format!("ispk_…{}", &s[s.len() - 4..]));
    }

    #[test]
    fn look_alikes_are_refused_with_the_reason() {
        let good = secret("abcdefghijklmnopqrstuvwxyz0123");
        check(&good, Ok(()));
        check("Bearer", Err(ShapeError::Prefix));
        check(
            "ISPK_abcdefghijklmnopqrstuvwxyz0123xxxxxx",
            Err(ShapeError::Prefix),
        );
        check(&good[..good.len() - 1], Err(ShapeError::Length(40)));
        check(&format!("{good}0"), Err(ShapeError::Length(42)));
        check(&good.replacen('a', "-", 1), Err(ShapeError::Alphabet));
        // One changed character of the random part breaks the checksum.
        check(&good.replacen('b', "c", 1), Err(ShapeError::Checksum));
        // So does a changed checksum character.
        let mut last = good.clone();
        let c = last.pop().expect("a character");
        last.push(if c == '0' { '1' } else { '0' });
        check(&last, Err(ShapeError::Checksum));
    }

    #[test]
    fn random_bytes_map_to_base62_without_the_biased_top() {
        assert_eq!(random_part(&[255u8; 100]), None);
        assert_eq!(random_part(&[0u8; 29]), None);
        let mixed: Vec<u8> = (0..=255).collect();
        let part = random_part(&mixed).expect("enough");
        assert_eq!(&part[..12], "0123456789AB");
    }

    #[test]
    fn the_checksum_is_crc32_in_six_base62_digits() {
        // CRC32("") = 0; CRC32("a") = 0xe8b7be43 = 3904355907.
        assert_eq!(checksum(""), "000000");
        let mut n: u64 = 3_904_355_907;
        let mut digits = Vec::new();
        for _ in 0..6 {
            digits.push(ALPHABET[(n % 62) as usize]);
            n /= 62;
        }
        digits.reverse();
        assert_eq!(checksum("a"), String::from_utf8(digits).expect("ascii"));
    }
}
