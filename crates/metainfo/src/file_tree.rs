//! The v2 `file tree` (BEP 52): dictionaries of path components nested down to each file's
//! `""` entry, which holds its length and the root of its merkle tree.
//!
//! The walk is one linear pass over the tree's bytes. Iterating dictionaries entry by entry would
//! rescan every subtree once per level above it, and a hostile tree chooses its depth.

use crate::bencode::{Value, string_contents, value_end};
use crate::files::FileAttributes;
use crate::merkle::Hash;
use crate::path::check_component;
use crate::{Limits, MetainfoError};

/// One file of a v2 file tree, in tree order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TreeFile {
    /// The path inside the tree: the file name alone for a file at its top.
    pub(crate) path: Vec<String>,
    pub(crate) length: u64,
    /// The merkle root; `None` only for an empty file.
    pub(crate) pieces_root: Option<Hash>,
    pub(crate) attributes: FileAttributes,
}

/// Parses a `file tree` value into its files, in tree order.
pub(crate) fn parse_file_tree(
    tree: Value<'_>,
    limits: &Limits,
) -> Result<Vec<TreeFile>, MetainfoError> {
    if tree.as_dict().is_none() {
        return Err(invalid("not a dictionary"));
    }
    let mut walk = Walk {
        input: tree.raw(),
        limits,
        path: Vec::new(),
        files: Vec::new(),
    };
    walk.directory(0)?;
    if walk.files.is_empty() {
        return Err(invalid("no files"));
    }
    Ok(walk.files)
}

fn invalid(reason: &'static str) -> MetainfoError {
    MetainfoError::InvalidField {
        field: "file tree",
        reason,
    }
}

struct Walk<'a> {
    /// The tree's bytes, already validated as bencode.
    input: &'a [u8],
    limits: &'a Limits,
    /// Names from the top of the tree down to the directory being walked.
    path: Vec<String>,
    files: Vec<TreeFile>,
}

impl<'a> Walk<'a> {
    /// Walks the dictionary that starts at `pos`; returns the offset just past it. Recursion is
    /// bounded by `max_path_components`, checked before each descent.
    fn directory(&mut self, pos: usize) -> Result<usize, MetainfoError> {
        let input = self.input;
        let mut pos = pos + 1;
        let (mut entries, mut leaf) = (0usize, None);
        while input[pos] != b'e' {
            entries += 1;
            let key_end = value_end(input, pos);
            let key = string_contents(input, pos, key_end);
            if key.is_empty() {
                let end = value_end(input, key_end);
                leaf = Some(Value::new(input, key_end, end));
                pos = end;
                continue;
            }
            if input[key_end] != b'd' {
                return Err(invalid("an entry is not a dictionary"));
            }
            let name = std::str::from_utf8(key).map_err(|_| invalid("a name is not UTF-8"))?;
            self.path.push(name.to_string());
            check_component(name, &|| self.path.join("/"))?;
            if self.path.len() > self.limits.max_path_components {
                return Err(MetainfoError::UnsafePath {
                    path: self.path.join("/"),
                    reason: "too many path components",
                });
            }
            pos = self.directory(key_end)?;
            self.path.pop();
        }
        if let Some(leaf) = leaf {
            if self.path.is_empty() {
                return Err(invalid("a file without a name"));
            }
            if entries > 1 {
                return Err(MetainfoError::ConflictingPaths(self.path.join("/")));
            }
            self.file(leaf)?;
        }
        Ok(pos + 1)
    }

    fn file(&mut self, leaf: Value<'_>) -> Result<(), MetainfoError> {
        if self.files.len() == self.limits.max_files {
            return Err(MetainfoError::TooManyFiles {
                count: self.files.len() + 1,
                limit: self.limits.max_files,
            });
        }
        let dict = leaf
            .as_dict()
            .ok_or(invalid("a file entry is not a dictionary"))?;
        let (mut length, mut root, mut attr) = (None, None, None);
        for (key, value) in dict {
            match key {
                b"length" => length = Some(value),
                b"pieces root" => root = Some(value),
                b"attr" => attr = value.as_bytes(),
                _ => {}
            }
        }
        let length = length
            .ok_or(MetainfoError::MissingField("length"))?
            .as_int()
            .and_then(|l| u64::try_from(l).ok())
            .ok_or(invalid("a file length is not a non-negative integer"))?;
        let attributes = attr.map(FileAttributes::parse).unwrap_or_default();
        if attributes.padding {
            return Err(invalid("a padding file in the tree"));
        }
        let pieces_root = if length == 0 {
            None
        } else {
            let root = root.ok_or(MetainfoError::MissingField("pieces root"))?;
            let root: Hash = root
                .as_bytes()
                .and_then(|r| r.try_into().ok())
                .ok_or(invalid("a `pieces root` is not 32 bytes"))?;
            if root == [0; 32] {
                return Err(invalid("a `pieces root` is all zeros"));
            }
            Some(root)
        };
        self.files.push(TreeFile {
            path: self.path.clone(),
            length,
            pieces_root,
            attributes,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bencode;

    fn parse(bytes: &[u8]) -> Result<Vec<TreeFile>, MetainfoError> {
        parse_file_tree(bencode::decode(bytes)?, &Limits::default())
    }

    fn root(byte: u8) -> String {
        format!("11:pieces root32:{}", (byte as char).to_string().repeat(32))
    }

    #[test]
    fn walks_nested_directories_in_order() {
        let tree = format!(
            "d1:ad0:d6:lengthi5e{}ee3:dird1:bd0:d6:lengthi0eee1:cd0:d4:attr1:x6:lengthi70000e{}eeee",
            root(b'r'),
            root(b's')
        );
        let files = parse(tree.as_bytes()).unwrap();
        let summary: Vec<_> = files
            .iter()
            .map(|f| (f.path.join("/"), f.length, f.pieces_root.map(|r| r[0])))
            .collect();
        assert_eq!(
            summary,
            [
                ("a".to_string(), 5, Some(b'r')),
                ("dir/b".to_string(), 0, None),
                ("dir/c".to_string(), 70000, Some(b's')),
            ]
        );
        assert!(files[2].attributes.executable);
    }

    #[test]
    fn rejects_malformed_trees() {
        let cases: [(&str, &str); 7] = [
            ("d0:d6:lengthi1eee", "a file without a name"),
            ("d1:ad0:d6:lengthi1eeee", "pieces root"),
            ("d1:ad0:d6:lengthi-1eeee", "non-negative"),
            ("d1:ai1ee", "not a dictionary"),
            ("d2:..d0:d6:lengthi0eeee", "`..`"),
            ("d1:ad0:d4:attr1:p6:lengthi0eeee", "padding"),
            ("de", "no files"),
        ];
        for (tree, reason) in cases {
            let error = parse(tree.as_bytes()).unwrap_err().to_string();
            assert!(error.contains(reason), "{tree}: {error}");
        }
        let both = format!("d1:ad0:d6:lengthi1e{}e1:bd0:d6:lengthi0eeeee", root(b'r'));
        assert!(matches!(
            parse(both.as_bytes()),
            Err(MetainfoError::ConflictingPaths(path)) if path == "a"
        ));
        let zero = "d1:ad0:d6:lengthi1e11:pieces root32:".to_string() + &"\0".repeat(32) + "eee";
        assert!(parse(zero.as_bytes()).is_err());
    }

    #[test]
    fn depth_and_file_count_are_bounded() {
        let limits = Limits {
            max_path_components: 3,
            max_files: 1,
            ..Limits::default()
        };
        let deep = "d1:ad1:bd1:cd1:dd0:d6:lengthi0eeeeeee";
        let error = parse_file_tree(bencode::decode(deep.as_bytes()).unwrap(), &limits);
        assert!(matches!(error, Err(MetainfoError::UnsafePath { .. })));
        let two = "d1:ad0:d6:lengthi0eee1:bd0:d6:lengthi0eeee";
        let error = parse_file_tree(bencode::decode(two.as_bytes()).unwrap(), &limits);
        assert!(matches!(error, Err(MetainfoError::TooManyFiles { .. })));
    }
}
