//! Field readers for the tolerance rule of `3cx-api.md`: a missing key or `null` reads as empty.
//!
//! Real PBXes send less than the reference promises, and 3CX's own types declare nearly every
//! field nullable. These `deserialize_with` helpers read one field each, so that a `null`, a
//! number where a string belongs or a string where a number belongs never fails the object
//! around it. Use them together with `#[serde(default)]`, which covers missing keys (except for
//! [`required_id`], whose field must be present).

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A string field: a string as is, a number or boolean as its text, anything else (`null`, an
/// object, an array) as `""`.
pub(crate) fn string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::String(text) => text,
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Null | Value::Array(_) | Value::Object(_) => String::new(),
    })
}

/// Any field whose `null` means its default (`"None"` for DN types, `false`, an unknown status).
/// A value of the wrong shape is read as the default too.
pub(crate) fn or_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    let value = Value::deserialize(deserializer)?;
    Ok(T::deserialize(value).unwrap_or_default())
}

/// A non-negative integer given as a number or a numeric string; `null` or junk is `0`.
pub(crate) fn number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    Ok(integer(&Value::deserialize(deserializer)?).unwrap_or(0))
}

/// An identifier the object is useless without (`id`, `callid`): a number or numeric string.
/// `null` or junk is an error, so the one object that carries it is skipped.
pub(crate) fn required_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let value = Value::deserialize(deserializer)?;
    integer(&value).ok_or_else(|| serde::de::Error::custom(format!("unusable id {value}")))
}

/// A number or a numeric string as a non-negative integer.
fn integer(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default)]
    struct Sample {
        #[serde(deserialize_with = "super::string")]
        text: String,
        #[serde(deserialize_with = "super::or_default")]
        flag: bool,
        #[serde(deserialize_with = "super::number")]
        count: u64,
    }

    #[derive(Debug, Deserialize)]
    struct Required {
        #[serde(deserialize_with = "super::required_id")]
        id: u64,
    }

    #[test]
    fn reads_nulls_and_odd_shapes_as_empty() {
        #[rustfmt::skip]
        let cases = [
            (json!({"text": "a", "flag": true, "count": 3}), ("a", true, 3)),
            (json!({"text": null, "flag": null, "count": null}), ("", false, 0)),
            (json!({}), ("", false, 0)),
            (json!({"text": 150, "flag": "yes", "count": "42"}), ("150", false, 42)),
            (json!({"text": [1], "flag": {}, "count": -1}), ("", false, 0)),
        ];
        for (value, (text, flag, count)) in cases {
            let sample: Sample = serde_json::from_value(value.clone()).unwrap();
            assert_eq!(
                (sample.text.as_str(), sample.flag, sample.count),
                (text, flag, count),
                "{value}"
            );
        }
    }

    #[test]
    fn a_required_id_must_be_usable() {
        let id = |value| serde_json::from_value::<Required>(value).map(|r| r.id);
        assert_eq!(id(json!({"id": 7})).unwrap(), 7);
        assert_eq!(id(json!({"id": "8"})).unwrap(), 8);
        assert!(id(json!({"id": null})).is_err());
        assert!(id(json!({"id": "x"})).is_err());
        assert!(id(json!({})).is_err());
    }
}
