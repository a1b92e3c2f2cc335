//! One progress line, composed to fit the terminal: a name, a bar, a percentage, and as many
//! of the details as fit, the most useful kept first.

use unicode_width::UnicodeWidthStr;

/// The narrowest bar worth drawing.
const MIN_BAR: usize = 10;

/// The widest a name is shown before it is shortened with `…`.
const MAX_NAME: usize = 24;

/// Columns assumed when the terminal does not say (and for plain lines).
pub(crate) const DEFAULT_WIDTH: usize = 80;

/// A detail shown after the percentage; lower `rank`s are kept first when space runs out.
pub(crate) struct Detail {
    pub(crate) rank: u8,
    pub(crate) text: String,
}

impl Detail {
    pub(crate) fn new(rank: u8, text: impl Into<String>) -> Self {
        Self {
            rank,
            text: text.into(),
        }
    }
}

/// `name [=====>     ]  45% detail detail…`, at most `width` columns wide.
pub(crate) fn compose(
    width: usize,
    name: &str,
    fraction: Option<f64>,
    details: &[Detail],
) -> String {
    let name = shorten(name, MAX_NAME.min(width / 3));
    let percent = match fraction {
        Some(f) => format!("{:>3.0}%", (f.clamp(0.0, 1.0) * 100.0).floor()),
        None => "  -%".to_owned(),
    };
    // name, space, [bar], space, percent
    let fixed = name.width() + 1 + 2 + 1 + percent.len();
    let mut room = width.saturating_sub(fixed + MIN_BAR);
    let mut by_rank: Vec<(usize, &Detail)> = details.iter().enumerate().collect();
    by_rank.sort_by_key(|(index, detail)| (detail.rank, *index));
    let mut kept = vec![false; details.len()];
    for (index, detail) in by_rank {
        let cost = detail.text.width() + 1;
        if cost <= room {
            room -= cost;
            kept[index] = true;
        }
    }
    let tail: Vec<&str> = details
        .iter()
        .zip(&kept)
        .filter(|(_, kept)| **kept)
        .map(|(detail, _)| detail.text.as_str())
        .collect();
    let tail = tail.join(" ");
    let tail_width = if tail.is_empty() { 0 } else { tail.width() + 1 };
    let bar_width = width
        .saturating_sub(fixed + tail_width)
        .max(MIN_BAR.min(width));
    let bar = bar(bar_width, fraction.unwrap_or(0.0));
    if tail.is_empty() {
        format!("{name} [{bar}] {percent}")
    } else {
        format!("{name} [{bar}] {percent} {tail}")
    }
}

/// The same facts on one line without a bar (for logs and pipes).
pub(crate) fn plain(name: &str, fraction: Option<f64>, details: &[Detail]) -> String {
    let percent = fraction.map_or_else(
        || "-".to_owned(),
        |f| format!("{:.1}%", f.clamp(0.0, 1.0) * 100.0),
    );
    let tail: Vec<&str> = details.iter().map(|d| d.text.as_str()).collect();
    format!("{name} {percent} {}", tail.join(" "))
}

fn bar(width: usize, fraction: f64) -> String {
    // The fraction is clamped to [0, 1] and the width is a terminal's.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let filled = ((fraction.clamp(0.0, 1.0) * width as f64).floor() as usize).min(width);
    let mut out = "=".repeat(filled);
    if filled < width {
        out.push(if filled > 0 { '>' } else { ' ' });
        out.push_str(&" ".repeat(width - filled - 1));
    }
    out
}

/// `name` cut to `max` columns, ending in `…` when cut.
pub(crate) fn shorten(name: &str, max: usize) -> String {
    if name.width() <= max {
        return name.to_owned();
    }
    let mut out = String::new();
    for c in name.chars() {
        if out.width() + c.to_string().width() + 1 > max {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details() -> Vec<Detail> {
        vec![
            Detail::new(0, "120.5/360.0 MiB"),
            Detail::new(1, "↓ 12.3 MiB/s"),
            Detail::new(4, "↑ 1.0 MiB/s"),
            Detail::new(2, "3/12 peers"),
            Detail::new(3, "ETA 1m02s"),
        ]
    }

    #[test]
    fn fits_the_width_and_drops_the_least_useful_first() {
        for width in [20, 40, 60, 80, 120, 200] {
            let line = compose(
                width,
                "a rather long torrent name.iso",
                Some(0.45),
                &details(),
            );
            assert!(line.width() <= width.max(MIN_BAR + 16), "{width}: {line}");
        }
        let line = compose(80, "payload", Some(0.45), &details());
        assert_eq!(line.width(), 80, "{line}");
        assert!(line.contains(" 45% 120.5/360.0 MiB ↓ 12.3 MiB/s"), "{line}");
        let narrow = compose(60, "payload", Some(0.45), &details());
        assert!(
            narrow.contains("120.5/360.0 MiB") && !narrow.contains('↑'),
            "{narrow}"
        );
    }

    #[test]
    fn names_are_shortened_by_display_width() {
        assert_eq!(shorten("short", 10), "short");
        assert_eq!(shorten("abcdefghijkl", 6), "abcde…");
        assert!(shorten("日本語のファイル名です", 9).width() <= 9);
    }

    #[test]
    fn bars() {
        assert_eq!(bar(10, 0.0), "          ");
        assert_eq!(bar(10, 0.5), "=====>    ");
        assert_eq!(bar(10, 1.0), "==========");
    }
}
