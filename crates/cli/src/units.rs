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

/// `1.5 GiB`, `512.0 KiB`, `17 B` (IEC units, as sizes are given on the command line).
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
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `12.3 MiB/s`, `512.0 KiB/s`, `0 B/s`: the units rate limits are given in.
pub(crate) fn format_rate(bytes_per_second: f64) -> String {
    // Rates are shown, not computed with: whole bytes are precise enough.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let bytes = bytes_per_second.max(0.0).round() as u64;
    format!("{}/s", format_bytes(bytes))
}

/// `done/total unit`, both in the total's unit: `120.5/360.0 MiB`.
pub(crate) fn format_progress(done: u64, total: u64) -> String {
    let total_text = format_bytes(total);
    let Some((_, unit)) = total_text.split_once(' ') else {
        return total_text;
    };
    let scale = match unit {
        "KiB" => 1u64 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return format!("{done}/{total_text}"),
    };
    format!("{:.1}/{total_text}", done as f64 / scale as f64)
}

/// Parses a duration: `90s`, `30m`, `2h`, `1d`, `1h30m`; a bare number is minutes (as aria2c's
/// `--seed-time`).
pub(crate) fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let trimmed = text.trim();
    let invalid = || format!("`{trimmed}` is not a duration (try 90s, 30m, 2h or 1h30m)");
    if trimmed.is_empty() {
        return Err(invalid());
    }
    if let Ok(minutes) = trimmed.parse::<f64>() {
        return seconds(minutes * 60.0).ok_or_else(invalid);
    }
    let mut total = 0.0;
    let mut number = String::new();
    for c in trimmed.chars() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            'd' => 86_400.0,
            _ => return Err(invalid()),
        };
        let value: f64 = number.parse().map_err(|_| invalid())?;
        total += value * unit;
        number.clear();
    }
    if !number.is_empty() {
        return Err(invalid());
    }
    seconds(total).ok_or_else(invalid)
}

fn seconds(value: f64) -> Option<std::time::Duration> {
    (value.is_finite() && (0.0..1e12).contains(&value))
        .then(|| std::time::Duration::from_secs_f64(value))
}

/// `42s`, `3m05s`, `2h07m`.
pub(crate) fn format_duration(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m{:02}s", seconds / 60, seconds % 60),
        _ => format!("{}h{:02}m", seconds / 3600, seconds % 3600 / 60),
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
        assert_eq!(format_bytes(3 << 29), "1.5 GiB");
        assert_eq!(format_rate(2_500_000.0), "2.4 MiB/s");
        assert_eq!(format_rate(40.0 * 1024.0 * 1024.0), "40.0 MiB/s");
        assert_eq!(format_rate(0.0), "0 B/s");
        assert_eq!(format_progress(120 << 20, 360 << 20), "120.0/360.0 MiB");
        assert_eq!(format_progress(3, 17), "3/17 B");
    }

    #[test]
    fn durations() {
        let secs = |text| parse_duration(text).map(|d| d.as_secs());
        assert_eq!(secs("90s"), Ok(90));
        assert_eq!(secs("30m"), Ok(1800));
        assert_eq!(secs("1h30m"), Ok(5400));
        assert_eq!(secs("2"), Ok(120));
        assert_eq!(secs("1d"), Ok(86_400));
        for bad in ["", "h", "1x", "5m3", "-1", "1e300"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(185), "3m05s");
        assert_eq!(format_duration(7620), "2h07m");
    }
}
