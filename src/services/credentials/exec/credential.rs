//! The ExecCredential a plugin prints: JSON (read with the YAML parser, JSON
//! is YAML, under a tree size of its own), checked as client-go checks it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::leaves::yaml::{self, Value};
use crate::services::credentials::{PluginProblem, Token};

/// What a run gave.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub token: Option<Token>,
    /// PEM certificate and key, or empty.
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    pub expires: Option<SystemTime>,
}

/// The credential in a plugin's output, which must answer in `api_version`.
pub fn parse_credential(
    output: &[u8],
    api_version: &'static str,
) -> Result<Credential, PluginProblem> {
    let text = std::str::from_utf8(output).map_err(|_| PluginProblem::NotUtf8)?;
    let doc = yaml::parse(text, yaml::Limits::PLUGIN_OUTPUT).map_err(PluginProblem::NotYaml)?;
    if !matches!(doc, Value::Map(_)) {
        return Err(PluginProblem::NotAnObject);
    }
    let string =
        |node: Option<&Value>, key: &'static str| -> Result<Option<String>, PluginProblem> {
            match node.and_then(|n| n.get(key)) {
                Some(Value::Str(s)) => Ok(Some(s.clone())),
                None | Some(Value::Null) => Ok(None),
                Some(_) => Err(PluginProblem::NotAString(key)),
            }
        };
    let returned = string(Some(&doc), "apiVersion")?.unwrap_or_default();
    if returned != api_version {
        return Err(PluginProblem::Version {
            configured: api_version,
            returned,
        });
    }
    let status = doc.get("status");
    let token = string(status, "token")?.filter(|t| !t.is_empty());
    let cert = string(status, "clientCertificateData")?.unwrap_or_default();
    let key = string(status, "clientKeyData")?.unwrap_or_default();
    if token.is_none() && cert.is_empty() && key.is_empty() {
        return Err(PluginProblem::NoCredential);
    }
    if cert.is_empty() != key.is_empty() {
        return Err(PluginProblem::HalfAPair);
    }
    let token = match token {
        Some(t) if t.bytes().any(|b| b.is_ascii_control()) => return Err(PluginProblem::BadToken),
        Some(t) => Some(Token::new(&t)),
        None => None,
    };
    let expires = match string(status, "expirationTimestamp")? {
        Some(stamp) => Some(rfc3339(&stamp).ok_or(PluginProblem::BadExpiry(stamp))?),
        None => None,
    };
    Ok(Credential {
        token,
        cert: cert.into_bytes(),
        key: key.into_bytes(),
        expires,
    })
}

/// `2026-11-29T03:04:05Z`, with optional fraction and `+hh:mm` offset.
fn rfc3339(stamp: &str) -> Option<SystemTime> {
    let b = stamp.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = stamp.get(range)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &stamp[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = rest[1..].split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60)
        }
    };
    let seconds =
        days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset;
    let seconds = u64::try_from(seconds).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(seconds))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146097 + day_of_era - 719468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::credentials::exec::V1;

    fn secs(stamp: &str) -> Option<u64> {
        rfc3339(stamp).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs())
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(secs("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(secs("2026-11-29T03:04:05Z"), Some(1_795_921_445));
        assert_eq!(secs("2026-11-29T04:04:05.123+01:00"), Some(1_795_921_445));
        assert_eq!(secs("2000-02-29T00:00:00Z"), Some(951_782_400));
        for bad in [
            "2026-11-29",
            "2026-13-01T00:00:00Z",
            "2026-11-29T03:04:05",
            "2026-11-29T03:04:05+0100",
            "x",
        ] {
            assert_eq!(secs(bad), None, "{bad}");
        }
    }

    #[test]
    fn credentials_as_client_go_checks_them() {
        let ok = parse_credential(
            br#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1",
                 "status":{"token":"abc","expirationTimestamp":"2030-01-01T00:00:00Z"}}"#,
            V1,
        )
        .unwrap();
        assert_eq!(
            ok.token.unwrap().header_line(),
            b"Authorization: Bearer abc\r\n"
        );
        assert!(ok.expires.is_some());
        let err = |out: &[u8], version| parse_credential(out, version).err().unwrap().to_string();
        assert!(err(
            br#"{"apiVersion":"client.authentication.k8s.io/v1beta1","status":{"token":"a"}}"#,
            V1
        )
        .contains("plugin returned version client.authentication.k8s.io/v1beta1"));
        assert!(err(
            br#"{"apiVersion":"client.authentication.k8s.io/v1","status":{}}"#,
            V1
        )
        .contains("didn't return a token"));
        assert!(err(
            br#"{"apiVersion":"client.authentication.k8s.io/v1","status":{"clientKeyData":"k"}}"#,
            V1
        )
        .contains("only certificate or key"));
        assert!(err(b"garbage {", V1).contains("decoding stdout"));
    }
}
