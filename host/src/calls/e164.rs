//! `callerid-e164` (contract 0.2): the external number in E.164, by libphonenumber's rules.
//!
//! The PBX reports numbers as dialled or as the trunk delivered them: national (`030 1234567`),
//! with the international prefix (`0049301234567`) or already international (`+49301234567`).
//! [`E164::normalise`] parses them with the `phonenumber` crate (a port of Google's
//! libphonenumber and its metadata), taking the configured country (`pbx.country`, ini
//! `[3CX] COUNTRY`) as the default region, and gives a number only when libphonenumber calls it
//! valid. Without a country only numbers written with a leading `+` can be placed, so only they
//! are normalised. Extensions (`120`), `anonymous` and empty caller ids give none.

use phonenumber::Mode;
use phonenumber::country::Id;

/// The E.164 normaliser of one host: its default region, if configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct E164 {
    region: Option<Id>,
}

/// A country code that libphonenumber does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an ISO 3166-1 alpha-2 country code known to libphonenumber (e.g. \"DE\")")]
pub struct UnknownCountry(pub String);

impl E164 {
    /// A normaliser for `country` (ISO 3166-1 alpha-2, e.g. `"DE"`, any case), or one without a
    /// default region for `None`.
    pub fn new(country: Option<&str>) -> Result<E164, UnknownCountry> {
        let region = country
            .map(|code| {
                code.trim()
                    .to_ascii_uppercase()
                    .parse::<Id>()
                    .map_err(|_| UnknownCountry(code.to_owned()))
            })
            .transpose()?;
        Ok(E164 { region })
    }

    /// `number` in E.164 (`+` and digits) when libphonenumber parses it as a valid number with
    /// this host's default region, else `None`.
    ///
    /// ```
    /// use callhook::calls::e164::E164;
    /// let de = E164::new(Some("DE")).unwrap();
    /// assert_eq!(de.normalise("030 1234567").as_deref(), Some("+49301234567"));
    /// assert_eq!(de.normalise("120"), None);
    /// ```
    pub fn normalise(&self, number: &str) -> Option<String> {
        let number = number.trim();
        if self.region.is_none() && !number.starts_with('+') {
            return None;
        }
        if !number.chars().any(|c| c.is_ascii_digit()) {
            return None;
        }
        let parsed = phonenumber::parse(self.region, number).ok()?;
        phonenumber::is_valid(&parsed).then(|| parsed.format().mode(Mode::E164).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_libphonenumber() {
        let de = E164::new(Some("DE")).unwrap();
        let none = E164::new(None).unwrap();
        #[rustfmt::skip]
        let cases = [
            (de,   "030 1234567",    Some("+49301234567")),
            (de,   "0301234567",     Some("+49301234567")),
            (de,   "0049301234567",  Some("+49301234567")),
            (de,   "+49301234567",   Some("+49301234567")),
            (de,   "+49 30 1234567", Some("+49301234567")),
            (de,   "120",            None),
            (de,   "anonymous",      None),
            (de,   "",               None),
            (none, "+49301234567",   Some("+49301234567")),
            (none, "0049301234567",  None),
            (none, "0301234567",     None),
            (none, "120",            None),
            (none, "",               None),
        ];
        for (e164, number, expected) in cases {
            assert_eq!(
                e164.normalise(number).as_deref(),
                expected,
                "{number:?} with {e164:?}"
            );
        }
    }

    #[test]
    fn rejects_unknown_countries() {
        assert_eq!(
            E164::new(Some("de")).unwrap(),
            E164::new(Some("DE")).unwrap()
        );
        assert_eq!(E164::new(Some("XX")), Err(UnknownCountry("XX".into())));
    }
}
