//! Query strings and form encoding.
//!
//! Values are percent-encoded byte by byte: everything but the unreserved characters of
//! RFC 3986 (`A-Z a-z 0-9 - . _ ~`) becomes `%XX` with upper-case hex digits, so a space is
//! `%20` (never `+`) and a `+` in a phone number is `%2B`. Empty values stay as `key=`.
//!
//! ```
//! use callhook_plugin_sdk::query::QueryString;
//!
//! let mut query = QueryString::new();
//! query.push("event", "ringing").push("callerid", "+49 30").push("did", "");
//! assert_eq!(query.as_str(), "event=ringing&callerid=%2B49%2030&did=");
//! ```

use std::fmt::Write;

/// A query string built pair by pair, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryString {
    encoded: String,
}

impl QueryString {
    /// An empty query string.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `key=value`, both percent-encoded.
    pub fn push(&mut self, key: &str, value: &str) -> &mut Self {
        if !self.encoded.is_empty() {
            self.encoded.push('&');
        }
        encode_into(&mut self.encoded, key);
        self.encoded.push('=');
        encode_into(&mut self.encoded, value);
        self
    }

    /// The encoded query string, without a leading `?`.
    pub fn as_str(&self) -> &str {
        &self.encoded
    }

    /// `url` with this query appended (`?` or `&` as the URL needs).
    pub fn append_to(&self, url: &str) -> String {
        if self.encoded.is_empty() {
            return url.to_string();
        }
        let separator = match url.find('?') {
            None => '?',
            Some(at) if at + 1 == url.len() || url.ends_with('&') => {
                return format!("{url}{}", self.encoded);
            }
            Some(_) => '&',
        };
        format!("{url}{separator}{}", self.encoded)
    }
}

/// Percent-encodes `value` (see the module docs for the character set).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    encode_into(&mut out, value);
    out
}

fn encode_into(out: &mut String, value: &str) {
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            write!(out, "%{byte:02X}").expect("writing to a String cannot fail");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_reserved_and_non_ascii_bytes() {
        let cases = [
            ("abcXYZ019-._~", "abcXYZ019-._~"),
            ("a b", "a%20b"),
            ("+4930", "%2B4930"),
            (
                "CompanyDID: call, 00:02:13",
                "CompanyDID%3A%20call%2C%2000%3A02%3A13",
            ),
            ("Müller", "M%C3%BCller"),
            ("a&b=c?d/e#f%", "a%26b%3Dc%3Fd%2Fe%23f%25"),
            ("", ""),
        ];
        for (raw, expected) in cases {
            assert_eq!(encode(raw), expected, "{raw:?}");
        }
    }

    #[test]
    fn appends_to_urls_with_and_without_a_query() {
        let mut query = QueryString::new();
        query.push("a", "1");
        assert_eq!(query.append_to("http://h/p"), "http://h/p?a=1");
        assert_eq!(query.append_to("http://h/p?k=v"), "http://h/p?k=v&a=1");
        assert_eq!(query.append_to("http://h/p?"), "http://h/p?a=1");
        assert_eq!(QueryString::new().append_to("http://h/p"), "http://h/p");
    }
}
