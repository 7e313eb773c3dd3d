//! Human sizes (`512m`, `1.5GiB`, `10MB`, `1024`) and durations (`1.5s`, `250ms`, `2m`).
//!
//! Sizes follow GNU coreutils (`dd`, `sort -S`) and Docker (`--memory 512m`): a bare number is
//! bytes; a single letter `k`/`m`/`g`/`t` (any case) and the IEC forms `KiB`/`MiB`/`GiB`/`TiB`
//! (also Kubernetes' `Ki`/`Mi`/`Gi`/`Ti`) are powers of 1024; `KB`/`MB`/`GB`/`TB` (any case) are
//! powers of 1000, as in SI. A lowercase `m` is MiB as in Docker, never Kubernetes' "milli".
//! Durations: `ms`, `s`, `m`, `h`; a bare number is seconds.

use std::time::Duration;

/// The accepted size spellings, quoted by every size error.
pub const SIZE_FORMS: &str = "a whole number of bytes (1024), or a number with a unit: k, m, g, t \
    or KiB, MiB, GiB, TiB (also Ki, Mi, Gi, Ti) are powers of 1024; KB, MB, GB, TB are powers of \
    1000; units in any case, e.g. 512m, 1.5GiB, 10MB";

/// Bytes per unit, keyed by the unit in lowercase; `None` for an unknown unit.
fn size_unit(unit: &str) -> Option<u64> {
    let binary = |exp: u32| 1u64 << (10 * exp);
    let decimal = |exp: u32| 1000u64.pow(exp);
    Some(match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "ki" | "kib" => binary(1),
        "m" | "mi" | "mib" => binary(2),
        "g" | "gi" | "gib" => binary(3),
        "t" | "ti" | "tib" => binary(4),
        "kb" => decimal(1),
        "mb" => decimal(2),
        "gb" => decimal(3),
        "tb" => decimal(4),
        _ => return None,
    })
}

/// Parse a human size into bytes (the spellings of [`SIZE_FORMS`]).
///
/// Exact integer arithmetic: `1.5GiB` is 1610612736, never a float rounding of it. A fraction is
/// rounded to the nearest byte; a fractional byte count without a unit is refused.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim_start();
    let bad = |why: String| format!("invalid size {text:?}: {why}; expected {SIZE_FORMS}");
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    let digits_ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits_ok(whole) || (num.contains('.') && !digits_ok(frac)) {
        return Err(bad(match num.is_empty() {
            true => "no number".into(),
            false => format!("{num:?} is not a number"),
        }));
    }
    let Some(mult) = size_unit(unit) else {
        return Err(bad(format!("unknown unit {unit:?}")));
    };
    if mult == 1 && !frac.trim_end_matches('0').is_empty() {
        return Err(bad("a byte count must be whole".into()));
    }
    let out_of_range = || format!("invalid size {text:?}: out of range (at most {})", u64::MAX);
    let whole: u128 = whole.parse().map_err(|_| out_of_range())?;
    // Enough fraction digits for any exact result: 1 TiB has 13 decimal digits.
    let frac = &frac[..frac.len().min(18)];
    let scale = 10u128.pow(u32::try_from(frac.len()).unwrap_or(0));
    let frac_value: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| out_of_range())?
    };
    let mult = u128::from(mult);
    let bytes = whole
        .checked_mul(mult)
        .and_then(|w| w.checked_add((frac_value * mult + scale / 2) / scale))
        .ok_or_else(out_of_range)?;
    u64::try_from(bytes).map_err(|_| out_of_range())
}

/// Parse a human duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| {
        format!("invalid duration {text:?}: expected a number with a unit such as 1.5s or 250ms")
    })?;
    let secs = match unit.trim() {
        "" | "s" | "sec" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "invalid duration {text:?}: unknown unit {other:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("invalid duration {text:?}: out of range"))
}

/// Format bytes the way `parse_size` reads them back (`64MiB`, `1536KiB`, `17`).
pub fn format_size(bytes: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= size && bytes % size == 0 {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

/// Format a duration the way `parse_duration` reads it back (`1.5s`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else if ms >= 1000 {
        format!("{}s", d.as_secs_f64())
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_every_common_spelling() {
        let mib = 1u64 << 20;
        let gib = 1u64 << 30;
        for (text, bytes) in [
            // Docker and GNU: single letters are binary, in any case.
            ("512m", 512 * mib),
            ("512M", 512 * mib),
            ("1g", gib),
            ("1G", gib),
            ("1.5G", gib + gib / 2),
            ("100k", 100 << 10),
            ("100K", 100 << 10),
            ("2t", 2 << 40),
            // IEC and Kubernetes binary forms.
            ("64KiB", 65536),
            ("1.5GiB", 1_610_612_736),
            ("256Mi", 256 * mib),
            ("2gib", 2 * gib),
            // SI: a trailing B makes it decimal.
            ("10MB", 10_000_000),
            ("2gb", 2_000_000_000),
            ("1.5GB", 1_500_000_000),
            ("3kB", 3000),
            ("1TB", 1_000_000_000_000),
            // Bytes, with or without B, and a space before the unit.
            ("1024", 1024),
            ("17B", 17),
            ("512 MiB", 512 * mib),
            (" 8m ", 8 * mib),
            ("0", 0),
            ("1.0", 1),
            // Fractions are exact and round to the nearest byte.
            ("0.5k", 512),
            ("1.1k", 1126),
            ("0.001k", 1),
            ("18446744073709551615", u64::MAX),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn bad_sizes_name_the_accepted_forms() {
        for (text, why) in [
            ("12 parsecs", "unknown unit \"parsecs\""),
            ("512mm", "unknown unit \"mm\""),
            ("1PiB", "unknown unit \"PiB\""),
            ("5mib/s", "unknown unit"),
            ("lots", "no number"),
            ("", "no number"),
            ("m", "no number"),
            ("-1m", "no number"),
            ("1.2.3g", "is not a number"),
            ("1.g", "is not a number"),
            (".5g", "is not a number"),
            ("1e9", "unknown unit \"e9\""),
            ("0x10", "unknown unit \"x10\""),
            ("1.5", "a byte count must be whole"),
            ("2.5B", "a byte count must be whole"),
        ] {
            let err = parse_size(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.contains("KiB, MiB, GiB, TiB"), "{text}: {err}");
            assert!(
                err.contains("KB, MB, GB, TB are powers of 1000"),
                "{text}: {err}"
            );
        }
        for text in [
            "18446744073709551616",
            "16777216t",
            "99999999999999999999999999999999g",
        ] {
            let err = parse_size(text).unwrap_err();
            assert!(err.contains("out of range"), "{text}: {err}");
        }
    }

    #[test]
    fn formatted_sizes_parse_back() {
        assert_eq!(format_size(64 << 20), "64MiB");
        assert_eq!(format_size(1536 << 10), "1536KiB");
        for bytes in [1_610_612_736, 17, 4096, 10_000_000] {
            assert_eq!(parse_size(&format_size(bytes)), Ok(bytes));
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("1 fortnight").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(2)), "2s");
    }
}
