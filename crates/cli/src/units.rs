//! Human sizes and rates: `512K`, `10M`, `1.5G`, `1GiB`, plain bytes; binary multiples.

/// Parses a byte count with an optional K/M/G/T suffix (powers of 1024; `B`, `iB` and `/s`
/// are accepted and ignored, case-insensitive).
pub(crate) fn parse_bytes(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let lower = trimmed.to_ascii_lowercase();
    let mut rest = lower.strip_suffix("/s").unwrap_or(&lower).trim_end();
    rest = rest
        .strip_suffix("ib")
        .or_else(|| rest.strip_suffix('b'))
        .unwrap_or(rest);
    let (number, shift) = match rest.chars().last() {
        Some('k') => (&rest[..rest.len() - 1], 10),
        Some('m') => (&rest[..rest.len() - 1], 20),
        Some('g') => (&rest[..rest.len() - 1], 30),
        Some('t') => (&rest[..rest.len() - 1], 40),
        _ => (rest, 0),
    };
    let invalid = || format!("`{trimmed}` is not a size (try 512K, 10M or 1G)");
    let number = number.trim();
    if number.is_empty() {
        return Err(invalid());
    }
    if let Ok(whole) = number.parse::<u64>() {
        return whole.checked_mul(1 << shift).ok_or_else(invalid);
    }
    let value: f64 = number.parse().map_err(|_| invalid())?;
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes >= u64::MAX as f64 {
        return Err(invalid());
    }
    // Rounded to whole bytes; the range was checked just above.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(bytes.round() as u64)
}

/// `1.50 GiB`, `512 KiB`, `17 B`.
pub(crate) fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

/// A rate in MB/s (decimal, as throughput is usually compared).
pub(crate) fn format_rate(bytes_per_second: f64) -> String {
    if bytes_per_second >= 1e6 {
        format!("{:.1} MB/s", bytes_per_second / 1e6)
    } else {
        format!("{:.0} kB/s", bytes_per_second / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_rates() {
        assert_eq!(parse_bytes("512K"), Ok(512 * 1024));
        assert_eq!(parse_bytes("10M"), Ok(10 << 20));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("2mb/s"), Ok(2 << 20));
        assert_eq!(parse_bytes("1.5k"), Ok(1536));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes(" 7 "), Ok(7));
        for bad in ["", "K", "-1M", "ten", "1X", "99999999999T", "nan"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        assert_eq!(format_bytes(17), "17 B");
        assert_eq!(format_bytes(3 << 29), "1.50 GiB");
        assert_eq!(format_rate(2_500_000.0), "2.5 MB/s");
    }
}
