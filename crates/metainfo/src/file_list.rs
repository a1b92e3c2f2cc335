//! The v1 file layout of an info dictionary: `length` for one file, or the `files` list (BEP 3),
//! with every path checked to stay inside the download directory.

use crate::bencode::Value;
use crate::files::{FileAttributes, FileEntry};
use crate::path::check_component;
use crate::{Limits, MetainfoError};

fn invalid(field: &'static str, reason: &'static str) -> MetainfoError {
    MetainfoError::InvalidField { field, reason }
}

/// The files of the v1 layout (`length` or `files`) of a torrent named `name`, and whether it is
/// a single-file torrent.
pub(crate) fn v1_files(
    name: &str,
    length: Option<Value<'_>>,
    files: Option<Value<'_>>,
    limits: &Limits,
) -> Result<(Vec<FileEntry>, bool), MetainfoError> {
    match (length, files) {
        (Some(length), None) => {
            check_component(name, &|| name.to_string())?;
            let entry = FileEntry {
                components: vec![name.to_string()],
                length: file_length(length)?,
                offset: 0,
                attributes: FileAttributes::default(),
                pieces_root: None,
            };
            Ok((vec![entry], true))
        }
        (None, Some(files)) => Ok((parse_files(name, files, limits)?, false)),
        _ => Err(MetainfoError::AmbiguousLayout),
    }
}

pub(crate) fn file_length(value: Value<'_>) -> Result<u64, MetainfoError> {
    let length = value.as_int().ok_or(invalid("length", "not an integer"))?;
    u64::try_from(length).map_err(|_| invalid("length", "negative"))
}

fn parse_files(
    name: &str,
    files: Value<'_>,
    limits: &Limits,
) -> Result<Vec<FileEntry>, MetainfoError> {
    let list = files.as_list().ok_or(invalid("files", "not a list"))?;
    check_component(name, &|| name.to_string())?;
    let mut entries = Vec::new();
    let mut offset = 0u64;
    for (index, file) in list.iter().enumerate() {
        if index == limits.max_files {
            return Err(MetainfoError::TooManyFiles {
                count: list.len(),
                limit: limits.max_files,
            });
        }
        let file = file
            .as_dict()
            .ok_or(invalid("files", "entry is not a dictionary"))?;
        let (mut length, mut path, mut path_utf8, mut attr) = (None, None, None, None);
        for (key, value) in file {
            match key {
                b"length" => length = Some(value),
                b"path" => path = Some(value),
                b"path.utf-8" => path_utf8 = Some(value),
                b"attr" => attr = value.as_bytes(),
                _ => {}
            }
        }
        let length = file_length(length.ok_or(MetainfoError::MissingField("length"))?)?;
        let mut components = vec![name.to_string()];
        let utf8 = path_utf8.and_then(|p| utf8_components(p));
        match utf8 {
            Some(list) => components.extend(list),
            None => {
                let path = path.ok_or(MetainfoError::MissingField("path"))?;
                let path = path.as_list().ok_or(invalid("path", "not a list"))?;
                for component in path {
                    components.push(
                        component
                            .to_string_lossy()
                            .ok_or(invalid("path", "component is not a string"))?,
                    );
                }
            }
        }
        check_path(&components, limits)?;
        let entry = FileEntry {
            components,
            length,
            offset,
            attributes: attr.map(FileAttributes::parse).unwrap_or_default(),
            pieces_root: None,
        };
        offset = offset
            .checked_add(length)
            .ok_or(MetainfoError::LengthOverflow)?;
        entries.push(entry);
    }
    if entries.is_empty() {
        return Err(invalid("files", "empty list"));
    }
    check_conflicts(&entries)?;
    Ok(entries)
}

fn utf8_components(path: Value<'_>) -> Option<Vec<String>> {
    path.as_list()?
        .iter()
        .map(|c| c.as_str().map(String::from))
        .collect()
}

fn check_path(components: &[String], limits: &Limits) -> Result<(), MetainfoError> {
    let whole = || components.join("/");
    if components.len() < 2 {
        return Err(MetainfoError::UnsafePath {
            path: whole(),
            reason: "empty path",
        });
    }
    if components.len() > limits.max_path_components {
        return Err(MetainfoError::UnsafePath {
            path: whole(),
            reason: "too many path components",
        });
    }
    for component in &components[1..] {
        check_component(component, &whole)?;
    }
    Ok(())
}

/// Rejects two files with one path, and a file whose path another file uses as a directory.
/// Padding files are exempt: BEP 47 torrents repeat names such as `.pad/16384`, and they are
/// never written.
fn check_conflicts(files: &[FileEntry]) -> Result<(), MetainfoError> {
    let mut paths: Vec<&[String]> = files
        .iter()
        .filter(|f| !f.is_padding())
        .map(|f| f.components.as_slice())
        .collect();
    // Creators list files sorted, so the sort is usually skipped.
    if !paths.is_sorted() {
        paths.sort_unstable();
    }
    for pair in paths.windows(2) {
        if pair[1].starts_with(pair[0]) {
            return Err(MetainfoError::ConflictingPaths(pair[1].join("/")));
        }
    }
    Ok(())
}
