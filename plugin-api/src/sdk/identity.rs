//! Compile-time identity: the `plugin.toml` values `manifest_id!` reads,
//! and the `.plugkit_info` record `export_plugin!` writes and hosts parse
//! without running the library.

/// The value of the top-level `key = "value"` line of a manifest text, at
/// compile time: a plain double-quoted string on one line, before the first
/// `[table]`. Panics (a compile error in a constant) otherwise.
#[doc(hidden)]
pub const fn __manifest_str(text: &'static str, key: &str) -> &'static str {
    const fn skip_blanks(bytes: &[u8], mut i: usize) -> usize {
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
            i += 1;
        }
        i
    }
    let bytes = text.as_bytes();
    let key = key.as_bytes();
    let mut line = 0;
    while line < bytes.len() {
        let i = skip_blanks(bytes, line);
        if i < bytes.len() && bytes[i] == b'[' {
            break; // tables begin: no more top-level keys
        }
        let mut k = 0;
        while k < key.len() && i + k < bytes.len() && bytes[i + k] == key[k] {
            k += 1;
        }
        if k == key.len() {
            let mut j = skip_blanks(bytes, i + k);
            if j < bytes.len() && bytes[j] == b'=' {
                j = skip_blanks(bytes, j + 1);
                if j < bytes.len() && bytes[j] == b'"' {
                    let start = j + 1;
                    let mut end = start;
                    while end < bytes.len()
                        && bytes[end] != b'"'
                        && bytes[end] != b'\n'
                        && bytes[end] != b'\\'
                    {
                        end += 1;
                    }
                    if end < bytes.len() && bytes[end] == b'"' {
                        let (_, rest) = bytes.split_at(start);
                        let (value, _) = rest.split_at(end - start);
                        match core::str::from_utf8(value) {
                            Ok(value) => return value,
                            Err(_) => panic!("plugin.toml is not UTF-8"),
                        }
                    }
                }
                panic!(
                    "plugin.toml: write `id` and `version` as plain \"quoted strings\" on one line"
                );
            }
        }
        while line < bytes.len() && bytes[line] != b'\n' {
            line += 1;
        }
        line += 1;
    }
    panic!("plugin.toml needs top-level `id = \"...\"` and `version = \"...\"` lines before any [table]")
}

/// `a == b` at compile time.
#[doc(hidden)]
pub const fn __str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The identity record's prefix, so readers can find and check it.
pub(crate) const IDENTITY_MAGIC: &[u8; 8] = b"PLUGKIT1";

/// Length of the identity record `PLUGKIT1 id \0 version \0 symbol \0`.
#[doc(hidden)]
pub const fn __identity_len(id: &str, version: &str, symbol: &str) -> usize {
    IDENTITY_MAGIC.len() + id.len() + 1 + version.len() + 1 + symbol.len() + 1
}

/// Builds the identity record at compile time.
#[doc(hidden)]
pub const fn __identity<const N: usize>(id: &str, version: &str, symbol: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let mut i = 0;
    let parts: [&[u8]; 4] = [
        IDENTITY_MAGIC.as_slice(),
        id.as_bytes(),
        version.as_bytes(),
        symbol.as_bytes(),
    ];
    let mut p = 0;
    while p < parts.len() {
        let part = parts[p];
        let mut j = 0;
        while j < part.len() {
            out[i] = part[j];
            i += 1;
            j += 1;
        }
        if p > 0 {
            i += 1; // NUL separator after each field
        }
        p += 1;
    }
    out
}

/// What a library's `.plugkit_info` section says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The plugin id (`Plugin::ID`).
    pub id: String,
    /// The plugin crate's version.
    pub version: String,
    /// The symbol its library header is exported under; `None` for
    /// libraries built before plugin-api 0.2 (they used abi_stable's fixed
    /// name, and are refused as too old anyway).
    pub symbol: Option<String>,
}

/// Parses an identity record found in a library's `.plugkit_info` section:
/// `PLUGKIT1` then NUL-terminated id, version and (since 0.2) symbol name.
pub fn parse_identity(section: &[u8]) -> Option<Identity> {
    let rest = section.strip_prefix(IDENTITY_MAGIC.as_slice())?;
    let mut parts = rest.split(|b| *b == 0);
    let id = std::str::from_utf8(parts.next()?).ok()?;
    let version = std::str::from_utf8(parts.next()?).ok()?;
    if id.is_empty() || version.is_empty() {
        return None;
    }
    let symbol = parts
        .next()
        .and_then(|s| std::str::from_utf8(s).ok())
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    Some(Identity {
        id: id.to_owned(),
        version: version.to_owned(),
        symbol,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "# a comment\n\
        id = \"twilio\"\n\
        name = \"Twilio\"\n\
        identifier = \"not the id\"\n\
        version   =   \"1.2.3\"\n\
        [config.id]\n\
        id = \"a table key, not the plugin's\"\n";

    #[test]
    fn manifest_values_are_read_at_compile_time_from_top_level_keys_only() {
        const ID: &str = __manifest_str(MANIFEST, "id");
        const VERSION: &str = __manifest_str(MANIFEST, "version");
        assert_eq!(ID, "twilio");
        assert_eq!(VERSION, "1.2.3");
        assert_eq!(__manifest_str(MANIFEST, "identifier"), "not the id");
    }

    #[test]
    fn strings_compare_equal_at_compile_time_only_when_identical() {
        const { assert!(__str_eq("0.1.0", "0.1.0")) };
        assert!(!__str_eq("0.1.0", "0.1.1"));
        assert!(!__str_eq("0.1.0", "0.1.0 "));
    }

    #[test]
    fn a_missing_key_or_an_unquoted_value_is_refused() {
        for (text, key) in [
            ("name = \"x\"\n[t]\nid = \"y\"\n", "id"),
            ("id = twilio\n", "id"),
            ("id = \"twi\\\"lio\"\n", "id"),
        ] {
            let refused = std::panic::catch_unwind(|| __manifest_str(text, key)).is_err();
            assert!(refused, "{text:?}");
        }
    }
}
