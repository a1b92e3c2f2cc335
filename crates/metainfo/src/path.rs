//! Rules that keep a hostile torrent's file names inside the download directory.

use crate::MetainfoError;

/// Linux's NAME_MAX: a longer component cannot be created.
const MAX_COMPONENT_BYTES: usize = 255;

/// Checks one path component (a file or directory name) from a torrent.
pub(crate) fn check_component(
    component: &str,
    whole: &dyn Fn() -> String,
) -> Result<(), MetainfoError> {
    let reason = if component.is_empty() {
        Some("empty path component")
    } else if component == "." || component == ".." {
        Some("`.` or `..` component")
    } else if component.contains(['/', '\\']) {
        Some("path separator inside a component")
    } else if component.contains('\0') {
        Some("NUL byte in a component")
    } else if has_drive_prefix(component) {
        Some("Windows drive prefix")
    } else if component.len() > MAX_COMPONENT_BYTES {
        Some("component longer than 255 bytes")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(MetainfoError::UnsafePath {
            path: whole(),
            reason,
        }),
        None => Ok(()),
    }
}

fn has_drive_prefix(component: &str) -> bool {
    let bytes = component.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(component: &str) -> Result<(), MetainfoError> {
        check_component(component, &|| component.to_string())
    }

    #[test]
    fn accepts_ordinary_names() {
        for name in [
            "a",
            "file.txt",
            ".hidden",
            "..dots",
            "ab:c",
            "ünïcödé",
            "a b",
        ] {
            assert!(check(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn rejects_escapes() {
        for name in [
            "",
            ".",
            "..",
            "a/b",
            "/etc",
            "a\\b",
            "a\0b",
            "C:",
            "c:evil",
            &"x".repeat(256),
        ] {
            assert!(
                matches!(check(name), Err(MetainfoError::UnsafePath { .. })),
                "{name:?}"
            );
        }
    }
}
