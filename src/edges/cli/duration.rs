//! Go's `time.ParseDuration`, as kubectl's duration flags take it.

use std::time::Duration;

/// Parses the subset of Go's `time.ParseDuration` that people write:
/// a sequence of `<number><unit>` with units h, m, s, ms, us, µs, ns, or a bare `0`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text;
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale: u128 = match unit {
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            "us" | "µs" => 1_000,
            "ns" => 1,
            _ => return None,
        };
        nanos = nanos.checked_add(scaled(number, scale)?)?;
        rest = tail;
    }
    let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
    let total = Duration::new(secs, (nanos % 1_000_000_000) as u32);
    (!text.is_empty()).then_some(total)
}

/// `number` (digits, at most one `.`, as Go writes `1.5` or `.5`) times
/// `scale` nanoseconds, truncated as Go truncates; integers only, so that no
/// float parser is linked in.
fn scaled(number: &str, scale: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + fraction.len() == 0 || !digits(whole) || !digits(fraction) {
        return None;
    }
    let whole: u128 = match whole {
        "" => 0,
        w => w.parse().ok()?,
    };
    let mut part = 0;
    let mut unit = scale;
    for digit in fraction.bytes().take(30) {
        unit /= 10;
        part += u128::from(digit - b'0') * unit;
    }
    whole.checked_mul(scale)?.checked_add(part)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_as_go_parses_them() {
        let ms = Duration::from_millis;
        for (text, want) in [
            ("0", Duration::ZERO),
            ("30s", ms(30_000)),
            ("1.5s", ms(1_500)),
            (".5s", ms(500)),
            ("1.s", ms(1_000)),
            ("1h2m3s", ms(3_723_000)),
            ("1h.5m", ms(3_630_000)),
            ("500ms", ms(500)),
            ("250us", Duration::from_micros(250)),
            ("7µs", Duration::from_micros(7)),
            ("1.0000000019s", Duration::new(1, 1)),
        ] {
            assert_eq!(parse_duration(text), Some(want), "{text}");
        }
        for text in [
            "",
            "s",
            "1",
            "1x",
            ".s",
            "1.2.3s",
            "-1s",
            "1e3s",
            "99999999999999999999h",
        ] {
            assert_eq!(parse_duration(text), None, "{text}");
        }
    }
}
