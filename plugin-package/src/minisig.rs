//! The minisign file formats the host reads: a `.minisig` signature (four
//! lines: untrusted comment, algorithm + key id + signature, trusted
//! comment, global signature) and a public key (`.pub` text or its base64
//! line), read without verifying anything. Pure. Each way a text is not
//! what it should be has its own [`SignatureError`].

use base64::Engine as _;

/// Why a library's signature does not pass. Each variant is a distinct
/// failure; the message says what was found, the caller says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// There is no signature.
    #[error("the library is not signed (no .minisig file beside it)")]
    Unsigned,
    /// The signature file is not a minisign signature.
    #[error(
        "the signature file is not a valid minisign signature ({reason}); sign the library \
         again with `cargo xtask sign`"
    )]
    Malformed {
        /// What is wrong with it.
        reason: String,
    },
    /// The signature file holds a minisign key instead of a signature.
    #[error(
        "the signature file holds a minisign {kind}, not a signature: the files were mixed \
         up; sign the library with `cargo xtask sign`, which writes `<library>.minisig`"
    )]
    KeyInsteadOfSignature {
        /// `public key` or `secret key`.
        kind: &'static str,
    },
    /// A valid signature in minisign's legacy format, which plugkit refuses:
    /// nothing was tampered with, the signer used an old mode.
    #[error(
        "the signature by key {key_id} uses minisign's legacy non-prehashed format \
         (algorithm `Ed`), which plugkit refuses; nothing suggests tampering. Sign the \
         library again in the prehashed format: `cargo xtask sign`, or `minisign -S` \
         (prehashed is its default; do not pass `-l`)"
    )]
    LegacyFormat {
        /// The signing key's id.
        key_id: String,
    },
    /// A signature algorithm minisign does not define.
    #[error(
        "the signature uses algorithm `{algorithm}`, which minisign does not define (it \
         writes `ED`); sign the library again with `cargo xtask sign`"
    )]
    UnknownAlgorithm {
        /// The two algorithm bytes, escaped.
        algorithm: String,
    },
    /// The policy trusts no key at all.
    #[error("no trusted public keys are configured, so no signature can be accepted")]
    NoTrustedKeys,
    /// A configured trusted key cannot be decoded.
    #[error("trusted key `{key}` is not a minisign public key ({reason})")]
    InvalidTrustedKey {
        /// The start of the key as configured.
        key: String,
        /// What the decoder said.
        reason: String,
    },
    /// Signed by a key that is not trusted.
    #[error("it is signed by key {key_id}, which is not one of the trusted keys")]
    UntrustedKey {
        /// The signing key's id.
        key_id: String,
    },
    /// The signature does not match the bytes, and the library's hash is not
    /// the one the signature names: the library changed after signing.
    #[error(
        "the signature by trusted key {key_id} does not match the library: \
         the file was modified or corrupted after it was signed"
    )]
    Tampered {
        /// The signing key's id.
        key_id: String,
    },
    /// The library is the one the signature names (same SHA-256), but the
    /// signature does not verify: the `.minisig` file itself was edited or
    /// damaged (its trusted comment or signature lines).
    #[error(
        "the signature by trusted key {key_id} does not verify, although the library is \
         the one it names (sha256 {sha256}): the .minisig file was edited or damaged after \
         signing (its trusted comment or a signature line); restore it from the package or \
         sign again with `cargo xtask sign`"
    )]
    SignatureAltered {
        /// The signing key's id.
        key_id: String,
        /// The library's SHA-256.
        sha256: String,
    },
    /// The trusted comment is not a plugkit one.
    #[error(
        "the signature's trusted comment `{comment}` does not carry the plugkit claims \
         (`plugkit id=... version=... sha256=...`); sign it with `cargo xtask sign`"
    )]
    NotPlugkit {
        /// The comment (truncated).
        comment: String,
    },
    /// The signed library hash is not the hash of these bytes.
    #[error("the signature was made for a library with sha256 {signed}, this one has {actual}")]
    HashMismatch {
        /// What the signature says.
        signed: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// The signature is for another plugin or version than the one being loaded.
    #[error(
        "the signature is for {field} `{signed}`, but the {origin} says `{found}`: \
         the package was relabelled or its files were mixed up"
    )]
    Relabelled {
        /// `id` or `version`.
        field: &'static str,
        /// What the signature says.
        signed: String,
        /// Where the other value comes from (`manifest`, `library`).
        origin: &'static str,
        /// The other value.
        found: String,
    },
    /// The packaged manifest is not the one that was signed.
    #[error(
        "plugin.toml was changed after the package was signed (sha256 {actual}, signed {signed})"
    )]
    ManifestChanged {
        /// What the signature says.
        signed: String,
        /// What the manifest hashes to.
        actual: String,
    },
}

/// The id of a minisign public key (its base64 line or `.pub` file text),
/// as minisign prints it: 16 uppercase hex digits.
pub fn public_key_id(key: &str) -> Result<String, SignatureError> {
    let line = public_key_line(key);
    let decoded = base64::engine::general_purpose::STANDARD.decode(line).ok();
    let refuse = |reason: String| SignatureError::InvalidTrustedKey {
        key: line.chars().take(16).collect(),
        reason,
    };
    match decoded {
        Some(bytes) if bytes.len() == 42 => Ok(key_id_hex(&bytes[2..10])),
        Some(bytes) if bytes.is_empty() => Err(refuse(
            "it is empty; configure the second line of the signer's `.pub` file".to_owned(),
        )),
        // Not even its start is echoed.
        Some(bytes) if bytes.len() == 158 => Err(SignatureError::InvalidTrustedKey {
            key: "(withheld)".to_owned(),
            reason: "it is a minisign SECRET key, which must never be configured or shared; \
                     configure the public key (the `.pub` file, or its second line) and \
                     replace this key if others have seen it"
                .to_owned(),
        }),
        Some(bytes) if bytes.len() == 74 => Err(refuse(
            "it is a signature line from a `.minisig` file, not a public key; configure \
             the signer's `.pub` file or its second line"
                .to_owned(),
        )),
        Some(bytes) => Err(refuse(format!(
            "it decodes to {} bytes, a minisign public key to 42 (56 base64 characters, \
             the second line of its `.pub` file); it may be cut short",
            bytes.len()
        ))),
        None => Err(refuse(
            "it is not base64; a minisign public key is 56 base64 characters, the second \
             line of its `.pub` file"
                .to_owned(),
        )),
    }
}

/// The base64 line of a public key given as that line or as `.pub` file text.
pub fn public_key_line(key: &str) -> &str {
    key.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
        .unwrap_or("")
}

fn key_id_hex(le_bytes: &[u8]) -> String {
    le_bytes.iter().rev().map(|b| format!("{b:02X}")).collect()
}

/// A `.minisig` text's layout, read without verifying anything.
pub struct SignatureLayout {
    /// As minisign prints it.
    pub key_id: String,
    /// Whether the algorithm is `Ed`, the legacy non-prehashed one.
    pub legacy: bool,
}

/// Reads the layout of a `.minisig` text, telling apart each way it can be
/// something other than a prehashed minisign signature. Pure.
pub fn signature_layout(signature: &str) -> Result<SignatureLayout, SignatureError> {
    let malformed = |reason: &str| SignatureError::Malformed {
        reason: reason.to_owned(),
    };
    let text = signature.strip_prefix('\u{feff}').unwrap_or(signature);
    if text.trim().is_empty() {
        return Err(malformed("it is empty"));
    }
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    let first = lines.first().copied().unwrap_or_default();
    let second = lines.get(1).map(|l| l.trim()).unwrap_or_default();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(second)
        .ok();
    if first.starts_with("untrusted comment:") {
        // `minisign -G` writes keys with the same first line as signatures.
        match decoded.as_ref().map(Vec::len) {
            Some(42) => return Err(SignatureError::KeyInsteadOfSignature { kind: "public key" }),
            Some(158) => return Err(SignatureError::KeyInsteadOfSignature { kind: "secret key" }),
            _ => {}
        }
    } else {
        return Err(malformed(
            "its first line should start with `untrusted comment:`",
        ));
    }
    if lines.len() < 4 {
        return Err(malformed(&format!(
            "it has {} line(s), a minisign signature has 4",
            lines.len()
        )));
    }
    let bytes = decoded.ok_or_else(|| malformed("its second line is not base64"))?;
    if bytes.len() != 74 {
        return Err(malformed(&format!(
            "its second line holds {} bytes, a signature line holds 74",
            bytes.len()
        )));
    }
    if !lines[2].starts_with("trusted comment: ") {
        return Err(malformed(
            "its third line should start with `trusted comment: `",
        ));
    }
    let global = base64::engine::general_purpose::STANDARD
        .decode(lines[3].trim())
        .map_err(|_| malformed("its fourth line is not base64"))?;
    if global.len() != 64 {
        return Err(malformed(&format!(
            "its fourth line holds {} bytes, a signature line holds 64",
            global.len()
        )));
    }
    let key_id = key_id_hex(&bytes[2..10]);
    match &bytes[..2] {
        b"ED" => Ok(SignatureLayout {
            key_id,
            legacy: false,
        }),
        b"Ed" => Ok(SignatureLayout {
            key_id,
            legacy: true,
        }),
        other => Err(SignatureError::UnknownAlgorithm {
            algorithm: other.escape_ascii().to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_read_as_minisign_prints_them() {
        // From minisign-verify's own test vectors: key E7620F1842B4E81F.
        let key = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";
        assert_eq!(public_key_id(key).ok().as_deref(), Some("E7620F1842B4E81F"));
        let file = format!("untrusted comment: minisign public key E7620F1842B4E81F\n{key}\n");
        assert_eq!(
            public_key_id(&file).ok().as_deref(),
            Some("E7620F1842B4E81F")
        );
        assert!(matches!(
            public_key_id("not a key"),
            Err(SignatureError::InvalidTrustedKey { .. })
        ));
    }

    fn check_trusted_key(key: &str, says: &str) {
        let message = public_key_id(key).unwrap_err().to_string();
        assert!(message.contains(says), "{key}: {message}");
    }

    // Issue 14, item 5: each wrong thing configured as a trusted key names
    // what it is; a secret key is never echoed.
    #[test]
    fn each_wrong_trusted_key_says_what_it_is() {
        let b64 = |len: usize| base64::engine::general_purpose::STANDARD.encode(vec![7u8; len]);
        let secret = format!(
            "untrusted comment: minisign encrypted secret key\n{}\n",
            b64(158)
        );
        check_trusted_key(&secret, "it is a minisign SECRET key");
        let message = public_key_id(&secret).unwrap_err().to_string();
        assert!(!message.contains(&b64(158)[..16]), "{message}");
        check_trusted_key(&b64(74), "a signature line from a `.minisig` file");
        check_trusted_key(&b64(30), "decodes to 30 bytes");
        check_trusted_key("RWQf6LRC GA9i", "not base64");
        check_trusted_key("", "it is empty");
        check_trusted_key("untrusted comment: minisign public key 1\n", "it is empty");
    }

    /// A `.minisig` text with a chosen algorithm, second-line length (key id
    /// 07…07), third line and fourth-line length; nothing in it verifies.
    fn minisig(
        algorithm: &[u8],
        second_len: usize,
        comment_line: &str,
        global_len: usize,
    ) -> String {
        let mut second = algorithm.to_vec();
        second.resize(second_len, 7);
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        format!(
            "untrusted comment: test\n{}\n{comment_line}\n{}\n",
            b64(&second),
            b64(&vec![9; global_len])
        )
    }

    fn check_layout(signature: &str, expected: &str) {
        let actual = match signature_layout(signature) {
            Ok(layout) => format!("key {} legacy {}", layout.key_id, layout.legacy),
            Err(e) => e.to_string(),
        };
        assert!(
            actual.contains(expected),
            "{signature:?}\n  gave: {actual}\n  want: {expected}"
        );
    }

    // Issue 14, item 5: a legacy signature was reported as tampering.
    #[test]
    fn each_way_a_signature_file_is_not_a_prehashed_signature_has_its_own_message() {
        let comment = "trusted comment: plugkit id=a version=1.0.0 sha256=ab";
        check_layout(
            &minisig(b"ED", 74, comment, 64),
            "key 0707070707070707 legacy false",
        );
        check_layout(
            &minisig(b"Ed", 74, comment, 64),
            "key 0707070707070707 legacy true",
        );
        check_layout(&minisig(b"XY", 74, comment, 64), "algorithm `XY`");
        check_layout(
            &minisig(b"\x00\xff", 74, comment, 64),
            "algorithm `\\x00\\xff`",
        );
        check_layout(
            &minisig(b"ED", 73, comment, 64),
            "second line holds 73 bytes",
        );
        check_layout(
            &minisig(b"ED", 74, "comment: x", 64),
            "third line should start",
        );
        check_layout(
            &minisig(b"ED", 74, comment, 63),
            "fourth line holds 63 bytes",
        );
        check_layout("", "it is empty");
        check_layout("\n \n", "it is empty");
        check_layout(
            "RWQf6LRC\n",
            "first line should start with `untrusted comment:`",
        );
        check_layout(
            "untrusted comment: minisign public key E7620F1842B4E81F\n\
             RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3\n",
            "holds a minisign public key, not a signature",
        );
        let secret = base64::engine::general_purpose::STANDARD.encode([1u8; 158]);
        check_layout(
            &format!("untrusted comment: minisign encrypted secret key\n{secret}\n"),
            "holds a minisign secret key, not a signature",
        );
        check_layout("untrusted comment: x\nnot base64!\n", "has 2 line(s)");
        // A byte-order mark and CRLF line ends (an editor on Windows) are not errors.
        let crlf = minisig(b"ED", 74, comment, 64).replace('\n', "\r\n");
        check_layout(&format!("\u{feff}{crlf}"), "legacy false");
    }
}
