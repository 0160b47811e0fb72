//! Wall-clock formatting in UTC: ISO 8601 for XAPI, `yyyyMMddHHmmss` for recording file names.
//!
//! Small enough not to need a date crate: civil dates from Unix days after Howard Hinnant's
//! `civil_from_days`.

use std::time::{SystemTime, UNIX_EPOCH};

/// The broken-down UTC time of `t`: (year, month, day, hour, minute, second, millisecond).
fn civil(t: SystemTime) -> (i64, u32, u32, u32, u32, u32, u32) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400) as u32);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        since.subsec_millis(),
    )
}

/// `2026-11-24T10:15:30.123+00:00`.
pub(crate) fn iso8601(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, ms) = civil(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}+00:00")
}

/// `20261124101530`, as in recording file names.
pub(crate) fn compact(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, _) = civil(t);
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}")
}

/// Whole seconds since the Unix epoch.
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        let cases = [
            (0, "1970-01-01T00:00:00.000+00:00", "19700101000000"),
            (
                951_782_400,
                "2000-02-29T00:00:00.000+00:00",
                "20000229000000",
            ),
            (
                1_795_515_330,
                "2026-11-24T10:15:30.000+00:00",
                "20261124101530",
            ),
        ];
        for (secs, iso, short) in cases {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(
                (iso8601(t).as_str(), compact(t).as_str()),
                (iso, short),
                "{secs}"
            );
        }
    }
}
