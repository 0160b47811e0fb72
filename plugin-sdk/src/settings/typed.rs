//! Typed settings: the flat `key = "text"` settings deserialized into a plugin's own struct.
//!
//! The host hands a plugin its settings flat, every value as text: TOML numbers and booleans
//! become `"4711"` and `"true"`, and nested tables are flattened with dots, so
//! `settings = { users = { "120" = "77" } }` arrives as the one setting `users.120 = "77"`
//! (see `host/src/config/raw.rs`, `flatten`). This module undoes the flattening, splitting keys
//! at every `.` into tables again, and deserializes the tree with serde, parsing each text as the
//! field's type asks: integers and floats with [`str::parse`], booleans with the spellings of
//! [`flag`](super::flag), unit enum variants by name.
//!
//! An empty value is `None` for an `Option` field and the empty string for a `String` field
//! (so that "empty sends none" settings can tell it from an unset one); a number or boolean
//! field rejects it. Every error is permanent and names the setting's full key.

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;

/// Why the settings do not fit the plugin's settings type. Permanent: converted to a
/// [`DeliveryError::Permanent`](crate::DeliveryError) by `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// The full dotted key, e.g. `users.120`; empty when the settings as a whole are meant.
    key: String,
    /// What is wrong with it, phrased to follow "the setting `key`".
    problem: String,
}

impl SettingsError {
    /// The full dotted key of the setting at fault, e.g. `users.120`; empty when the settings as
    /// a whole are at fault (a check of the plugin's own over several fields).
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "the settings {}", self.problem)
        } else {
            write!(f, "the setting `{}` {}", self.key, self.problem)
        }
    }
}

impl std::error::Error for SettingsError {}

impl From<SettingsError> for crate::DeliveryError {
    /// Always permanent: a configuration fault does not heal by retrying.
    fn from(error: SettingsError) -> Self {
        crate::DeliveryError::permanent(error.to_string())
    }
}

/// Deserializes settings given as `(key, value)` pairs, as [`parse`](super::parse) does with the
/// host's. Use it in a plugin's tests:
///
/// ```
/// use callhook_plugin_sdk::settings;
/// use std::collections::BTreeMap;
///
/// #[derive(serde::Deserialize)]
/// struct Settings {
///     api_base: String,
///     #[serde(default)]
///     create_contacts: bool,
///     #[serde(default)]
///     users: BTreeMap<String, u64>,
/// }
///
/// let parsed: Settings = settings::from_pairs([
///     ("api_base", "http://127.0.0.1:8085"),
///     ("create_contacts", "true"),
///     ("users.120", "77"),
/// ])?;
/// assert_eq!(parsed.api_base, "http://127.0.0.1:8085");
/// assert!(parsed.create_contacts);
/// assert_eq!(parsed.users["120"], 77);
/// # Ok::<(), settings::SettingsError>(())
/// ```
pub fn from_pairs<T, I, K, V>(pairs: I) -> Result<T, SettingsError>
where
    T: DeserializeOwned,
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: Into<String>,
{
    let tree = Node::tree(pairs)?;
    T::deserialize(Settings {
        node: tree,
        path: String::new(),
    })
    .map_err(|e| e.locate(""))
}

/// The settings as a tree: a dotted key is a path of tables.
#[derive(Debug)]
enum Node {
    Value(String),
    Table(BTreeMap<String, Node>),
}

impl Node {
    fn tree<I, K, V>(pairs: I) -> Result<Node, SettingsError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let mut root = BTreeMap::new();
        for (key, value) in pairs {
            let key = key.as_ref();
            let mut table = &mut root;
            let mut parts = key.split('.').peekable();
            let mut path = String::new();
            while let Some(part) = parts.next() {
                path = join(&path, part);
                if parts.peek().is_none() {
                    if matches!(table.get(part), Some(Node::Table(_))) {
                        return Err(conflict(&path, key));
                    }
                    table.insert(part.to_string(), Node::Value(value.into()));
                    break;
                }
                let next = table
                    .entry(part.to_string())
                    .or_insert_with(|| Node::Table(BTreeMap::new()));
                match next {
                    Node::Table(inner) => table = inner,
                    Node::Value(_) => return Err(conflict(&path, key)),
                }
            }
        }
        Ok(Node::Table(root))
    }
}

fn conflict(path: &str, key: &str) -> SettingsError {
    SettingsError {
        key: path.to_string(),
        problem: format!("is both a value and a table (`{key}` is set)"),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The error while deserializing: `key` is filled in on the way out, at the innermost table
/// that knows it.
#[derive(Debug)]
struct Error {
    key: Option<String>,
    /// Set by [`de::Error::missing_field`]: the table's path plus this field is the key.
    missing: Option<&'static str>,
    problem: String,
}

impl Error {
    fn problem(problem: String) -> Self {
        Error {
            key: None,
            missing: None,
            problem,
        }
    }

    /// Names the key: `path` plus the missing field, else `path` itself.
    fn locate(self, path: &str) -> SettingsError {
        let key = match (self.key, self.missing) {
            (Some(key), _) => key,
            (None, Some(field)) => join(path, field),
            (None, None) => path.to_string(),
        };
        SettingsError {
            key,
            problem: self.problem,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problem)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::problem(format!("is invalid: {msg}"))
    }

    fn missing_field(field: &'static str) -> Self {
        Error {
            key: None,
            missing: Some(field),
            problem: "is required but not set".to_string(),
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let expected = expected
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ");
        Error::problem(format!(
            "is not a setting of this plugin (`{field}`; known: {expected})"
        ))
    }
}

/// A deserializer over one node of the tree, at `path`.
struct Settings {
    node: Node,
    path: String,
}

impl Settings {
    fn value(&self) -> Result<&str, Error> {
        match &self.node {
            Node::Value(value) => Ok(value),
            Node::Table(_) => Err(Error::problem(
                "must be a single value, not a table".to_string(),
            )),
        }
    }

    fn parse<T: std::str::FromStr>(&self, what: &str) -> Result<T, Error> {
        let value = self.value()?;
        value
            .trim()
            .parse()
            .map_err(|_| Error::problem(format!("must be {what}, not {value:?}")))
    }
}

/// Numbers: parsed from the text, named in the error.
macro_rules! parse_number {
    ($($method:ident $visit:ident $ty:ty, $what:literal;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.$visit(self.parse::<$ty>($what)?)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Settings {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::Value(value) => visitor.visit_string(value),
            Node::Table(table) => visit_table(table, &self.path, visitor),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let value = self.value()?;
        match super::parse_flag(value) {
            Some(Some(flag)) => visitor.visit_bool(flag),
            _ => Err(Error::problem(format!(
                "must be 1/0 or true/false, not {value:?}"
            ))),
        }
    }

    parse_number! {
        deserialize_i8 visit_i8 i8, "an integer from -128 to 127";
        deserialize_i16 visit_i16 i16, "an integer from -32768 to 32767";
        deserialize_i32 visit_i32 i32, "a 32-bit integer";
        deserialize_i64 visit_i64 i64, "a 64-bit integer";
        deserialize_u8 visit_u8 u8, "an integer from 0 to 255";
        deserialize_u16 visit_u16 u16, "an integer from 0 to 65535";
        deserialize_u32 visit_u32 u32, "an integer from 0 to 4294967295";
        deserialize_u64 visit_u64 u64, "an integer from 0 to 18446744073709551615";
        deserialize_f32 visit_f32 f32, "a number";
        deserialize_f64 visit_f64 f64, "a number";
        deserialize_char visit_char char, "a single character";
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.value()?;
        self.deserialize_any(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node {
            Node::Value(value) if value.trim().is_empty() => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.value()?;
        match self.node {
            Node::Value(value) => visitor.visit_enum(value.into_deserializer()),
            Node::Table(_) => unreachable!("value() refused a table"),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        i128 u128 bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

fn visit_table<'de, V: Visitor<'de>>(
    table: BTreeMap<String, Node>,
    path: &str,
    visitor: V,
) -> Result<V::Value, Error> {
    let access = Table {
        entries: table.into_iter(),
        path,
        current: None,
    };
    visitor
        .visit_map(access)
        .map_err(|e| located(e.locate(path)))
}

/// A located error travels outwards unchanged.
fn located(error: SettingsError) -> Error {
    Error {
        key: Some(error.key),
        missing: None,
        problem: error.problem,
    }
}

struct Table<'p> {
    entries: std::collections::btree_map::IntoIter<String, Node>,
    path: &'p str,
    /// The entry whose key was handed out and whose value is next.
    current: Option<(String, Node)>,
}

impl<'de> MapAccess<'de> for Table<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((key, node)) = self.entries.next() else {
            return Ok(None);
        };
        let path = join(self.path, &key);
        let parsed = seed
            .deserialize(Settings {
                node: Node::Value(key.clone()),
                path: path.clone(),
            })
            .map_err(|e| located(e.locate(&path)))?;
        self.current = Some((key, node));
        Ok(Some(parsed))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let (key, node) = self
            .current
            .take()
            .expect("serde asks for a value after its key");
        let path = join(self.path, &key);
        seed.deserialize(Settings {
            node,
            path: path.clone(),
        })
        .map_err(|e| located(e.locate(&path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(rename_all = "snake_case")]
    enum Auth {
        #[default]
        App,
        Webhook,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Bitrix {
        portal: String,
        #[serde(default)]
        auth: Auth,
        #[serde(default)]
        show_card: bool,
        default_user: Option<u64>,
        #[serde(default)]
        users: BTreeMap<String, u64>,
        #[serde(default)]
        ratio: f64,
        disposition: Option<String>,
    }

    fn bitrix(pairs: &[(&str, &str)]) -> Result<Bitrix, SettingsError> {
        from_pairs(pairs.iter().copied())
    }

    fn error(pairs: &[(&str, &str)]) -> (String, String) {
        let error = bitrix(pairs).unwrap_err();
        (error.key().to_string(), error.to_string())
    }

    #[test]
    fn accepts_values_as_text_and_flattened_tables() {
        let parsed = bitrix(&[
            ("auth", "webhook"),
            ("default_user", "5"),
            ("disposition", ""),
            ("portal", "https://example.bitrix24.de"),
            ("ratio", "0.5"),
            ("show_card", "yes"),
            ("users.120", "77"),
            ("users.800", " 12 "),
        ])
        .unwrap();
        assert_eq!(
            parsed,
            Bitrix {
                portal: "https://example.bitrix24.de".to_string(),
                auth: Auth::Webhook,
                show_card: true,
                default_user: Some(5),
                users: BTreeMap::from([("120".to_string(), 77), ("800".to_string(), 12)]),
                ratio: 0.5,
                disposition: None,
            }
        );
    }

    #[test]
    fn accepts_defaults_for_what_is_unset() {
        let parsed = bitrix(&[("portal", "p")]).unwrap();
        assert_eq!(parsed.auth, Auth::App);
        assert!(!parsed.show_card);
        assert_eq!(parsed.default_user, None);
        assert!(parsed.users.is_empty());
    }

    #[test]
    fn accepts_an_empty_string_as_itself_and_as_none() {
        #[derive(Deserialize)]
        struct S {
            kept: String,
            none: Option<String>,
            #[serde(default)]
            number: Option<u32>,
        }
        let parsed: S = from_pairs([("kept", ""), ("none", " "), ("number", "")]).unwrap();
        assert_eq!(parsed.kept, "");
        assert_eq!(parsed.none, None);
        assert_eq!(parsed.number, None);
    }

    #[test]
    fn accepts_integer_map_keys_and_nested_structs() {
        #[derive(Deserialize)]
        struct Owner {
            id: u64,
            email: Option<String>,
        }
        #[derive(Deserialize)]
        struct S {
            users: BTreeMap<u32, u64>,
            owner: Owner,
        }
        let parsed: S =
            from_pairs([("users.120", "77"), ("users.7", "8"), ("owner.id", "3")]).unwrap();
        assert_eq!(parsed.users, BTreeMap::from([(7, 8), (120, 77)]));
        assert_eq!(parsed.owner.id, 3);
        assert_eq!(parsed.owner.email, None);
    }

    #[test]
    fn rejects_with_the_full_key() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case] = &[
            (
                &[],
                "portal",
                "the setting `portal` is required but not set",
            ),
            (
                &[("portal", "p"), ("users.120", "anna")],
                "users.120",
                "the setting `users.120` must be an integer from 0 to 18446744073709551615, not \"anna\"",
            ),
            (
                &[("portal", "p"), ("show_card", "2")],
                "show_card",
                "the setting `show_card` must be 1/0 or true/false, not \"2\"",
            ),
            (
                &[("portal", "p"), ("show_card", "")],
                "show_card",
                "the setting `show_card` must be 1/0 or true/false, not \"\"",
            ),
            (
                &[("portal", "p"), ("auth", "oauth")],
                "auth",
                "the setting `auth` is invalid: unknown variant `oauth`, expected `app` or `webhook`",
            ),
            (
                &[("portal", "p"), ("portl", "x")],
                "portl",
                "the setting `portl` is not a setting of this plugin (`portl`; known: `portal`, `auth`, `show_card`, `default_user`, `users`, `ratio`, `disposition`)",
            ),
            (
                &[("portal.x", "p")],
                "portal",
                "the setting `portal` must be a single value, not a table",
            ),
            (
                &[("portal", "p"), ("users", "77")],
                "users",
                "the setting `users` is invalid: invalid type: string \"77\", expected a map",
            ),
            (
                &[("portal", "p"), ("ratio", "half")],
                "ratio",
                "the setting `ratio` must be a number, not \"half\"",
            ),
        ];
        for (pairs, key, message) in cases {
            assert_eq!(
                error(pairs),
                (key.to_string(), message.to_string()),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn rejects_a_key_that_is_both_value_and_table() {
        for pairs in [
            [("users", "1"), ("users.120", "77")],
            [("users.120", "77"), ("users", "1")],
        ] {
            let error = bitrix(&pairs).unwrap_err();
            assert_eq!(error.key(), "users", "{pairs:?}");
        }
        assert_eq!(
            bitrix(&[("users", "1"), ("users.120", "77")])
                .unwrap_err()
                .to_string(),
            "the setting `users` is both a value and a table (`users.120` is set)"
        );
    }

    #[test]
    fn rejects_a_missing_field_of_a_nested_table_by_its_full_key() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Owner {
            id: u64,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct S {
            owner: Owner,
        }
        let error = from_pairs::<S, _, _, _>([("owner.email", "a@b")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the setting `owner.id` is required but not set"
        );
    }

    #[test]
    fn converts_to_a_permanent_delivery_error() {
        let error: crate::DeliveryError = bitrix(&[]).unwrap_err().into();
        assert!(matches!(
            error,
            crate::DeliveryError::Permanent(ref e)
                if e.message == "the setting `portal` is required but not set" && !e.target_gone
        ));
    }
}
