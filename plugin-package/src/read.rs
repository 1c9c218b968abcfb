//! Reading the text files the host parses (plugin manifests, operator
//! configuration, signatures) and the folders they live in, with a distinct reason for each way a file
//! fails to be text: UTF-16 (as some editors save), other non-UTF-8 bytes,
//! a directory in its place. A UTF-8 byte-order mark is dropped.

use std::io;
use std::path::Path;

/// The file's text. Encoding problems are `InvalidData` errors whose
/// message says what the bytes are.
pub fn read_text(path: &Path) -> io::Result<String> {
    if path.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "it is a directory, not a file",
        ));
    }
    let bytes = std::fs::read(path)?;
    decode_text(bytes).map_err(|reason| io::Error::new(io::ErrorKind::InvalidData, reason))
}

/// `bytes` as UTF-8 text without a leading byte-order mark. Pure.
pub fn decode_text(bytes: Vec<u8>) -> Result<String, String> {
    // With a byte-order mark, or without one: every other byte of ASCII
    // text saved as UTF-16 is zero.
    let zeros_at = |start: usize| {
        bytes
            .iter()
            .take(64)
            .skip(start)
            .step_by(2)
            .all(|b| *b == 0)
    };
    let utf16 = bytes.starts_with(&[0xff, 0xfe])
        || bytes.starts_with(&[0xfe, 0xff])
        || (bytes.len() >= 4 && (zeros_at(0) || zeros_at(1)));
    if utf16 {
        return Err("it is UTF-16 text (an editor saved it so)".to_owned());
    }
    match String::from_utf8(bytes) {
        Ok(mut text) => {
            if text.starts_with('\u{feff}') {
                text.drain(..'\u{feff}'.len_utf8());
            }
            Ok(text)
        }
        Err(e) => Err(format!(
            "it is not UTF-8 text (byte {} starts an invalid sequence)",
            e.utf8_error().valid_up_to()
        )),
    }
}

/// What to do about a file that could not be read, by cause.
pub fn read_hint(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::NotFound => "create it or fix the path",
        io::ErrorKind::PermissionDenied => "give the host's user read access to it",
        io::ErrorKind::IsADirectory => "point at the file, not its folder",
        io::ErrorKind::NotADirectory => "point at the folder, not a file in its place",
        io::ErrorKind::InvalidData => "save it as UTF-8 text",
        _ => "check the file and the disk it is on",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bytes: &[u8], expected: Result<&str, &str>) {
        match (decode_text(bytes.to_vec()), expected) {
            (Ok(text), Ok(want)) => assert_eq!(text, want),
            (Err(reason), Err(want)) => assert!(reason.contains(want), "{reason}"),
            (got, want) => panic!("{bytes:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn each_way_a_file_is_not_utf8_text_has_its_own_reason() {
        check(b"id = \"a\"\n", Ok("id = \"a\"\n"));
        check(b"\xef\xbb\xbfid = \"a\"\n", Ok("id = \"a\"\n"));
        check(b"\xff\xfei\0d\0", Err("UTF-16"));
        check(b"\xfe\xff\0i\0d", Err("UTF-16"));
        check(b"i\0d\0 \0=\0", Err("UTF-16"));
        check(b"\0i\0d\0 \0=", Err("UTF-16"));
        check(
            b"name = \"caf\xe9\"\n",
            Err("byte 11 starts an invalid sequence"),
        );
    }

    #[test]
    fn files_are_read_with_a_reason_per_failure() {
        let dir = tempfile::tempdir().unwrap();
        let missing = read_text(&dir.path().join("nope")).unwrap_err();
        assert_eq!(read_hint(&missing), "create it or fix the path");
        let folder = read_text(dir.path()).unwrap_err();
        assert_eq!(read_hint(&folder), "point at the file, not its folder");
        let latin1 = dir.path().join("latin1.toml");
        std::fs::write(&latin1, b"name = \"caf\xe9\"\n").unwrap();
        let error = read_text(&latin1).unwrap_err();
        assert_eq!(read_hint(&error), "save it as UTF-8 text");
        assert!(error.to_string().contains("not UTF-8"), "{error}");
    }
}
