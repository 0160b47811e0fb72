//! Text from outside (plugins, receivers) made safe to print on one line.
//!
//! A plugin's log message or a receiver's error body ends up in the host's log and on the
//! operator's terminal. Printed raw, a newline in it forges a log line of its own, and an ANSI
//! escape sequence can rewrite what the terminal shows. [`one_line`] and [`escape_controls`]
//! escape every character that could do either, so one piece of foreign text stays one line of
//! plain text:
//!
//! - control characters, C0 (`U+0000`–`U+001F`), `DEL` and C1 (`U+0080`–`U+009F`): `\n`,
//!   `\r` and `\t` as such, the others as `\u{1b}`;
//! - the Unicode line and paragraph separators (`U+2028`, `U+2029`), which some viewers break
//!   lines at, and the bidirectional formatting characters (`U+200E`, `U+200F`,
//!   `U+202A`–`U+202E`, `U+2066`–`U+2069`), which reorder what is displayed.
//!
//! Everything else, backslashes included, is kept as it is: the result is for reading, not a
//! reversible encoding.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every character that could break a line or steer a terminal escaped (see the
/// module documentation); borrowed when there is none.
///
/// ```
/// # use callhook::text::escape_controls;
/// assert_eq!(escape_controls("HTTP 500: oops\n\x1b[2J"), "HTTP 500: oops\\n\\u{1b}[2J");
/// assert_eq!(escape_controls("plain"), "plain");
/// ```
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    one_line(text, usize::MAX)
}

/// `text` escaped like [`escape_controls`], and cut after at most `max_bytes` bytes of the
/// escaped text (at a character boundary) with a marker saying how long the original was.
///
/// ```
/// # use callhook::text::one_line;
/// assert_eq!(one_line("abcdef", 3), "abc… [cut; 6 bytes in all]");
/// assert_eq!(one_line("a\nb", 10), "a\\nb");
/// ```
pub fn one_line(text: &str, max_bytes: usize) -> Cow<'_, str> {
    if text.len() <= max_bytes && !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().min(max_bytes));
    let mut escaped = String::new();
    for c in text.chars() {
        escaped.clear();
        if needs_escape(c) {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
        if out.len() + escaped.len() > max_bytes {
            let _ = write!(out, "… [cut; {} bytes in all]", text.len());
            return Cow::Owned(out);
        }
        out.push_str(&escaped);
    }
    Cow::Owned(out)
}

/// Whether `c` could break a line or change what a terminal shows.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_table() {
        #[rustfmt::skip]
        let cases = [
            ("plain text",            "plain text"),
            ("",                      ""),
            ("two\nlines",            "two\\nlines"),
            ("carriage\rreturn",      "carriage\\rreturn"),
            ("crlf\r\n",              "crlf\\r\\n"),
            ("tab\there",             "tab\\there"),
            ("\x1b[31mred\x1b[0m",    "\\u{1b}[31mred\\u{1b}[0m"),
            ("nul\0",                 "nul\\u{0}"),
            ("del\x7f",               "del\\u{7f}"),
            ("c1\u{85}next line",     "c1\\u{85}next line"),
            ("csi\u{9b}2J",           "csi\\u{9b}2J"),
            ("line\u{2028}sep",       "line\\u{2028}sep"),
            ("bidi\u{202e}txt",       "bidi\\u{202e}txt"),
            ("isolate\u{2066}x",      "isolate\\u{2066}x"),
            ("back\\slash kept",      "back\\slash kept"),
            ("ünïcödé ✓ 日本",        "ünïcödé ✓ 日本"),
        ];
        for (text, expected) in cases {
            assert_eq!(escape_controls(text), expected, "{text:?}");
        }
    }

    #[test]
    fn escaped_text_is_one_line_without_escape_characters() {
        let every_char: String = (0..0x3000u32).filter_map(char::from_u32).collect();
        let escaped = escape_controls(&every_char);
        assert!(!escaped.chars().any(needs_escape), "nothing left to escape");
        assert_eq!(escaped.lines().count(), 1);
    }

    #[test]
    fn clean_text_is_borrowed() {
        assert!(matches!(escape_controls("no controls"), Cow::Borrowed(_)));
        assert!(matches!(one_line("short", 5), Cow::Borrowed(_)));
    }

    #[test]
    fn long_text_is_cut_with_a_marker() {
        let long = "x".repeat(10_000);
        let cut = one_line(&long, 4096);
        assert_eq!(
            cut,
            format!("{}… [cut; 10000 bytes in all]", "x".repeat(4096))
        );
    }

    #[test]
    fn the_cut_counts_escaped_bytes_and_keeps_whole_characters() {
        // Each newline becomes two bytes, so three of them no longer fit in five.
        assert_eq!(one_line("\n\n\n", 5), "\\n\\n… [cut; 3 bytes in all]");
        // An escape is never split, nor a multi-byte character.
        assert_eq!(one_line("\x1b", 3), "… [cut; 1 bytes in all]");
        assert_eq!(one_line("aé", 2), "a… [cut; 3 bytes in all]");
    }
}
