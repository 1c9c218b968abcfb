//! Counted nouns in the daemon's lines ("1 plugin", "2 plugins"), so no
//! line says "1 plugins" or "plugin(s)".

/// `n` followed by `one` when `n` is 1, else by `many`.
pub fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::counted;

    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(counted(0, "plugin", "plugins"), "0 plugins");
        assert_eq!(counted(1, "plugin", "plugins"), "1 plugin");
        assert_eq!(counted(2, "entry", "entries"), "2 entries");
    }
}
