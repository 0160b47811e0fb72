//! Public links to MP3s, signed so that only the holder of a link can fetch the file.
//!
//! A link is `{public_url}/webapi/recording/{file}?expires={unix}&sig={hex}` where `sig` is the
//! HMAC-SHA256, under the link key, of `{file}\n{expires}`: the file name and expiry are both
//! covered, so neither can be changed without the key. The server recomputes the MAC and compares
//! it in constant time (`Mac::verify_slice`), then checks that `expires` has not passed. With
//! signing off (`SIGN_LINKS=0`, for receivers of the original module) links are bare
//! `{public_url}/webapi/recording/{file}` and every request for an existing file is served.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The path under which MP3s are served.
pub const ROUTE_PREFIX: &str = "/webapi/recording/";

/// Why a request's signature was refused (each answered `403`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefusal {
    /// `expires` or `sig` is missing.
    #[error("the link is not signed (expires and sig are required)")]
    Unsigned,
    /// `expires` or `sig` is not well-formed, or the signature does not match.
    #[error("the link's signature does not match")]
    BadSignature,
    /// The signature is right but the link's time is up.
    #[error("the link expired at {expires} (unix time)")]
    Expired {
        /// When it expired, in Unix seconds.
        expires: u64,
    },
}

/// Makes and checks links.
#[derive(Clone)]
pub struct Links {
    public_url: String,
    signer: Option<Signer>,
}

#[derive(Clone)]
struct Signer {
    key: Vec<u8>,
    lifetime: Duration,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links")
            .field("public_url", &self.public_url)
            .field("signed", &self.signer.is_some())
            .finish()
    }
}

impl Links {
    /// Links under `public_url` (a trailing `/` is ignored), signed with `key` and valid for
    /// `lifetime`, or unsigned when `key` is `None`.
    pub fn new(public_url: &str, key: Option<Vec<u8>>, lifetime: Duration) -> Links {
        Links {
            public_url: public_url.trim().trim_end_matches('/').to_owned(),
            signer: key.map(|key| Signer { key, lifetime }),
        }
    }

    /// Whether links are signed.
    pub fn signed(&self) -> bool {
        self.signer.is_some()
    }

    /// The public link to `file`, signed as of now.
    pub fn url(&self, file: &str) -> String {
        self.url_at(file, SystemTime::now())
    }

    /// The public link to `file`, signed as if made at `now`.
    ///
    /// ```
    /// # use callhook::recordings::Links;
    /// # use std::time::{Duration, UNIX_EPOCH};
    /// let links = Links::new("https://pbx.example.com:5001/", Some(b"k".to_vec()), Duration::from_secs(60));
    /// let url = links.url_at("210701165649_782-1-1.mp3", UNIX_EPOCH + Duration::from_secs(1000));
    /// assert!(url.starts_with(
    ///     "https://pbx.example.com:5001/webapi/recording/210701165649_782-1-1.mp3?expires=1060&sig="
    /// ));
    /// ```
    pub fn url_at(&self, file: &str, now: SystemTime) -> String {
        let base = format!("{}{ROUTE_PREFIX}{file}", self.public_url);
        match &self.signer {
            None => base,
            Some(signer) => {
                let expires = unix(now + signer.lifetime);
                let sig = hex::encode(signer.mac(file, expires).finalize().into_bytes());
                format!("{base}?expires={expires}&sig={sig}")
            }
        }
    }

    /// Checks a request for `file` with the query parameters `expires` and `sig` at `now`.
    /// Always `Ok` when links are not signed.
    pub fn verify(
        &self,
        file: &str,
        expires: Option<&str>,
        sig: Option<&str>,
        now: SystemTime,
    ) -> Result<(), LinkRefusal> {
        let Some(signer) = &self.signer else {
            return Ok(());
        };
        let (Some(expires), Some(sig)) = (expires, sig) else {
            return Err(LinkRefusal::Unsigned);
        };
        let expires: u64 = expires.parse().map_err(|_| LinkRefusal::BadSignature)?;
        let sig = hex::decode(sig).map_err(|_| LinkRefusal::BadSignature)?;
        signer
            .mac(file, expires)
            .verify_slice(&sig)
            .map_err(|_| LinkRefusal::BadSignature)?;
        if unix(now) > expires {
            return Err(LinkRefusal::Expired { expires });
        }
        Ok(())
    }
}

impl Signer {
    fn mac(&self, file: &str, expires: u64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(file.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "210701165649_782-1-1.mp3";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// `(expires, sig)` of a link.
    fn query(url: &str) -> (String, String) {
        let query = url.split_once('?').unwrap().1;
        let (e, s) = query.split_once('&').unwrap();
        (
            e.strip_prefix("expires=").unwrap().to_owned(),
            s.strip_prefix("sig=").unwrap().to_owned(),
        )
    }

    #[test]
    fn accepts_its_own_links_until_they_expire() {
        let links = Links::new("https://x", Some(b"key".to_vec()), Duration::from_secs(60));
        let (expires, sig) = query(&links.url_at(FILE, at(1000)));
        let check =
            |file: &str, e: &str, s: &str, now| links.verify(file, Some(e), Some(s), at(now));
        assert_eq!(check(FILE, &expires, &sig, 1060), Ok(()));
        assert_eq!(
            check(FILE, &expires, &sig, 1061),
            Err(LinkRefusal::Expired { expires: 1060 })
        );
        let mut tampered = sig.clone().into_bytes();
        tampered[0] = if tampered[0] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(tampered).unwrap();
        for (file, e, s) in [
            (FILE, "1061", sig.as_str()),
            ("210701165649_782-1-2.mp3", &expires, &sig),
            (FILE, &expires, &tampered),
            (FILE, &expires, "zz"),
            (FILE, "soon", &sig),
        ] {
            assert_eq!(
                check(file, e, s, 1000),
                Err(LinkRefusal::BadSignature),
                "{file} {e} {s}"
            );
        }
        assert_eq!(
            links.verify(FILE, None, Some(&sig), at(1000)),
            Err(LinkRefusal::Unsigned)
        );
        let other_key = Links::new(
            "https://x",
            Some(b"other".to_vec()),
            Duration::from_secs(60),
        );
        assert_eq!(
            other_key.verify(FILE, Some(&expires), Some(&sig), at(1000)),
            Err(LinkRefusal::BadSignature)
        );
    }

    #[test]
    fn unsigned_links_are_bare() {
        let links = Links::new("http://x:8080/base/", None, Duration::from_secs(60));
        assert_eq!(
            links.url(FILE),
            format!("http://x:8080/base/webapi/recording/{FILE}")
        );
        assert_eq!(links.verify(FILE, None, None, at(0)), Ok(()));
    }
}
