//! Text that torrents, magnet links, trackers and peers chose, made safe for a terminal: a
//! name like `\x1b]0;…\x07` or `\x1b[2J` would otherwise retitle the window or clear the
//! screen, and a right-to-left override would show `exe.txt` as `txt.exe`.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` must not reach a terminal as it is: C0 controls (tab and newline too, as the
/// output is line-based), DEL, C1 controls (some terminals read U+009B as CSI), and the
/// bidirectional embeddings, overrides and isolates.
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` for human output: each unsafe character as `\x1b` (ASCII) or `\u{202e}`. A
/// backslash is left alone, so a name that spells `\x1b` looks the same as one holding
/// ESC, but only the latter could act on the terminal.
pub(crate) fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match u32::from(c) {
            code if is_unsafe(c) && code < 0x80 => {
                let _ = write!(out, "\\x{code:02x}");
            }
            code if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{code:x}}}");
            }
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A path for human output, escaped (and lossy where it is not UTF-8).
pub(crate) fn escape_path(path: &std::path::Path) -> String {
    escape(&path.to_string_lossy()).into_owned()
}

/// `value` as one line of JSON in which no unsafe character appears raw. serde_json escapes
/// C0 controls but writes DEL, C1 and bidi controls as they are; `\uXXXX` is the same JSON
/// string, so readers get the exact text back. Outside strings JSON is plain ASCII.
pub(crate) fn json_line(value: &serde_json::Value) -> String {
    let text = value.to_string();
    if !text.chars().any(is_unsafe) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_unsafe(c) {
            // Every unsafe character is in the BMP, so one `\u` escape holds it.
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn controls_and_bidi_overrides_are_escaped_and_the_rest_kept() {
        assert!(matches!(escape("Film (2020) é ✓"), Cow::Borrowed(_)));
        assert_eq!(
            escape("a\x1b[31m\t\n\x7f\u{9b}\u{202e}\u{2066}b\\"),
            "a\\x1b[31m\\x09\\x0a\\x7f\\u{9b}\\u{202e}\\u{2066}b\\"
        );
        let value = serde_json::json!({ "name": "a\x1b\x7f\u{9b}\u{202e}" });
        let line = json_line(&value);
        assert!(line.is_ascii(), "{line}");
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back, value);
    }
}
