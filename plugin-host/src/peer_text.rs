//! Text another program or server wrote, made fit for a message: terminal
//! colour codes and other escape sequences removed (with `anstream`'s
//! parser), carriage returns and control characters dropped. Pure.

/// `text` without escape sequences and control characters; line breaks
/// (`\n`, and `\r\n` or a lone `\r` as one) and tabs are kept.
pub(crate) fn clean(text: &str) -> String {
    let stripped = anstream::adapter::strip_str(text).to_string();
    let mut out = String::with_capacity(stripped.len());
    let mut chars = stripped.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\r' => out.push('\n'),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// [`clean`] text on one line (whitespace runs become one space, ends
/// trimmed), cut to at most `max` bytes with `…` when longer.
pub(crate) fn one_line(text: &str, max: usize) -> String {
    let cleaned = clean(text);
    let joined = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.len() <= max {
        return joined;
    }
    let mut end = max;
    while !joined.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &joined[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected_clean: &str, expected_line: &str) {
        assert_eq!(clean(text), expected_clean, "clean {text:?}");
        assert_eq!(one_line(text, 40), expected_line, "one line {text:?}");
    }

    #[test]
    fn escapes_and_carriage_returns_do_not_reach_a_message() {
        check("plain", "plain", "plain");
        check(
            "\x1b[0;31mfatal:\x1b[0m no route\r\n",
            "fatal: no route\n",
            "fatal: no route",
        );
        // A progress line redrawn with `\r`, an OSC title, a bell, a NUL.
        check(
            "10%\r100%\x1b]0;title\x07 done\0\n",
            "10%\n100% done\n",
            "10% 100% done",
        );
        check("a\tb\u{9b}c", "a\tbc", "a bc");
        check(
            "1 error occurred:\n\t* permission denied\n\n",
            "1 error occurred:\n\t* permission denied\n\n",
            "1 error occurred: * permission denied",
        );
        check(
            &"é".repeat(30),
            &"é".repeat(30),
            &format!("{}…", "é".repeat(20)),
        );
    }
}
