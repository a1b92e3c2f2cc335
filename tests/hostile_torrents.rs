//! A table of malformed and hostile `.torrent` files, each rejected with its specific error.

use cratetorrent_metainfo::bencode::{DecodeErrorKind, DictBuilder, Encode, OwnedValue, Raw};
use cratetorrent_metainfo::{Limits, Metainfo, MetainfoError};

const HASH: &[u8; 20] = b"01234567890123456789";

/// A multi-file torrent of one piece whose `files` entries are given raw.
fn multi(files: &str) -> Vec<u8> {
    multi_pieces(files, 1)
}

fn multi_pieces(files: &str, pieces: usize) -> Vec<u8> {
    let hashes = "x".repeat(20 * pieces);
    let info = format!(
        "d5:files{files}4:name4:root12:piece lengthi16384e6:pieces{}:{hashes}e",
        hashes.len()
    );
    let mut torrent = DictBuilder::new();
    torrent.insert("info", Raw(info.as_bytes()));
    torrent.to_bencode()
}

/// A single-file torrent with the given info entries added to (or replacing) a valid base.
fn single(overrides: &[(&str, OwnedValue)]) -> Vec<u8> {
    let mut info = DictBuilder::new();
    info.insert("name", "file.bin")
        .insert("length", 16384i64)
        .insert("piece length", 16384u32)
        .insert("pieces", &HASH[..]);
    for (key, value) in overrides {
        info.insert(key, value);
    }
    let mut torrent = DictBuilder::new();
    torrent.insert("info", info);
    torrent.to_bencode()
}

fn unsafe_path(reason: &str) -> impl Fn(&MetainfoError) -> bool + '_ {
    move |e| matches!(e, MetainfoError::UnsafePath { reason: r, .. } if *r == reason)
}

fn bencode(kind: DecodeErrorKind) -> impl Fn(&MetainfoError) -> bool {
    move |e| matches!(e, MetainfoError::Bencode(d) if d.kind == kind)
}

#[test]
fn baseline_is_valid() {
    assert!(Metainfo::from_bytes(&single(&[])).is_ok());
    assert!(Metainfo::from_bytes(&multi("ld6:lengthi16384e4:pathl1:aeee")).is_ok());
}

/// A check that an error is the one a case expects.
type Expect = Box<dyn Fn(&MetainfoError) -> bool>;

#[test]
fn hostile_torrents_get_specific_errors() {
    let deep = format!("d4:info{}{}e", "l".repeat(100_000), "e".repeat(100_000));
    let big = |n: i64| OwnedValue::Int(n);
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        // Paths that would escape the download directory.
        (
            "dot-dot component",
            multi("ld6:lengthi1e4:pathl2:..6:passwdeee"),
            Box::new(unsafe_path("`.` or `..` component")),
        ),
        (
            "dot component",
            multi("ld6:lengthi1e4:pathl1:.1:aeee"),
            Box::new(unsafe_path("`.` or `..` component")),
        ),
        (
            "slash inside",
            multi("ld6:lengthi1e4:pathl11:../../etc/xeee"),
            Box::new(unsafe_path("path separator inside a component")),
        ),
        (
            "absolute",
            multi("ld6:lengthi1e4:pathl11:/etc/passwdeee"),
            Box::new(unsafe_path("path separator inside a component")),
        ),
        (
            "backslash",
            multi("ld6:lengthi1e4:pathl7:..\\evileee"),
            Box::new(unsafe_path("path separator inside a component")),
        ),
        (
            "drive prefix",
            multi("ld6:lengthi1e4:pathl7:C:\\Evileee"),
            Box::new(unsafe_path("path separator inside a component")),
        ),
        (
            "drive letter",
            multi("ld6:lengthi1e4:pathl2:C:1:aeee"),
            Box::new(unsafe_path("Windows drive prefix")),
        ),
        (
            "NUL byte",
            multi("ld6:lengthi1e4:pathl3:a\0beee"),
            Box::new(unsafe_path("NUL byte in a component")),
        ),
        (
            "empty component",
            multi("ld6:lengthi1e4:pathl0:1:aeee"),
            Box::new(unsafe_path("empty path component")),
        ),
        (
            "empty path",
            multi("ld6:lengthi1e4:pathleee"),
            Box::new(unsafe_path("empty path")),
        ),
        (
            "dot-dot name",
            single(&[("name", "..".into())]),
            Box::new(unsafe_path("`.` or `..` component")),
        ),
        (
            "slash in name",
            single(&[("name", "/etc/passwd".into())]),
            Box::new(unsafe_path("path separator inside a component")),
        ),
        (
            "empty name",
            single(&[("name", "".into())]),
            Box::new(unsafe_path("empty path component")),
        ),
        (
            "duplicate file",
            multi("ld6:lengthi1e4:pathl1:aeed6:lengthi1e4:pathl1:aeee"),
            Box::new(|e| matches!(e, MetainfoError::ConflictingPaths(_))),
        ),
        (
            "file used as dir",
            multi("ld6:lengthi1e4:pathl1:aeed6:lengthi1e4:pathl1:a1:beee"),
            Box::new(|e| matches!(e, MetainfoError::ConflictingPaths(_))),
        ),
        // Absurd lengths.
        (
            "negative length",
            single(&[("length", big(-1))]),
            Box::new(|e| {
                matches!(
                    e,
                    MetainfoError::InvalidField {
                        field: "length",
                        reason: "negative"
                    }
                )
            }),
        ),
        (
            "zero length",
            single(&[("length", big(0))]),
            Box::new(|e| *e == MetainfoError::ZeroLength),
        ),
        (
            "lengths overflow",
            multi(
                "ld6:lengthi9223372036854775807e4:pathl1:aeed6:lengthi9223372036854775807e4:pathl1:beed6:lengthi9223372036854775807e4:pathl1:ceee",
            ),
            Box::new(|e| *e == MetainfoError::LengthOverflow),
        ),
        (
            "huge length, few hashes",
            single(&[("length", big(1 << 40))]),
            Box::new(|e| matches!(e, MetainfoError::PiecesLengthMismatch { actual: 20, .. })),
        ),
        (
            "too many pieces",
            single(&[("length", big(1 << 60))]),
            Box::new(|e| matches!(e, MetainfoError::TooManyPieces(_))),
        ),
        (
            "zero piece length",
            single(&[("piece length", big(0))]),
            Box::new(|e| *e == MetainfoError::InvalidPieceLength(0)),
        ),
        (
            "odd piece length",
            single(&[("piece length", big(12345))]),
            Box::new(|e| *e == MetainfoError::InvalidPieceLength(12345)),
        ),
        (
            "huge piece length",
            single(&[("piece length", big(1 << 40))]),
            Box::new(|e| *e == MetainfoError::InvalidPieceLength(1 << 40)),
        ),
        (
            "pieces too short",
            single(&[("pieces", "short".into())]),
            Box::new(|e| {
                *e == MetainfoError::PiecesLengthMismatch {
                    expected: 20,
                    actual: 5,
                }
            }),
        ),
        (
            "pieces not a string",
            single(&[("pieces", big(1))]),
            Box::new(|e| {
                matches!(
                    e,
                    MetainfoError::InvalidField {
                        field: "pieces",
                        ..
                    }
                )
            }),
        ),
        (
            "length not an int",
            single(&[("length", "12".into())]),
            Box::new(|e| {
                matches!(
                    e,
                    MetainfoError::InvalidField {
                        field: "length",
                        ..
                    }
                )
            }),
        ),
        (
            "both layouts",
            single(&[("files", OwnedValue::List(vec![]))]),
            Box::new(|e| *e == MetainfoError::AmbiguousLayout),
        ),
        (
            "empty file list",
            multi("le"),
            Box::new(|e| {
                matches!(
                    e,
                    MetainfoError::InvalidField {
                        field: "files",
                        reason: "empty list"
                    }
                )
            }),
        ),
        (
            "v2 with an empty file tree",
            b"d4:infod9:file treede6:lengthi1e12:meta versioni2e4:name1:a12:piece lengthi16384eee"
                .to_vec(),
            Box::new(|e| {
                matches!(
                    e,
                    MetainfoError::InvalidField {
                        field: "file tree",
                        reason: "no files"
                    }
                )
            }),
        ),
        (
            "unknown meta version",
            single(&[("meta version", big(3))]),
            Box::new(|e| matches!(e, MetainfoError::Unsupported(_))),
        ),
        // Broken structure.
        (
            "not a dict",
            b"li1ee".to_vec(),
            Box::new(|e| *e == MetainfoError::NotADictionary),
        ),
        (
            "missing info",
            b"d8:announce1:xe".to_vec(),
            Box::new(|e| *e == MetainfoError::MissingField("info")),
        ),
        (
            "info not a dict",
            b"d4:info1:xe".to_vec(),
            Box::new(|e| matches!(e, MetainfoError::InvalidField { field: "info", .. })),
        ),
        (
            "missing name",
            b"d4:infod6:lengthi1eee".to_vec(),
            Box::new(|e| *e == MetainfoError::MissingField("name")),
        ),
        (
            "truncated",
            single(&[])[..60].to_vec(),
            Box::new(bencode(DecodeErrorKind::UnexpectedEof)),
        ),
        (
            "trailing bytes",
            [single(&[]), b"junk".to_vec()].concat(),
            Box::new(bencode(DecodeErrorKind::TrailingBytes)),
        ),
        (
            "string past end",
            b"d4:info99999999999:xe".to_vec(),
            Box::new(bencode(DecodeErrorKind::StringPastEnd(99_999_999_999))),
        ),
        (
            "deep nesting",
            deep.into_bytes(),
            Box::new(bencode(DecodeErrorKind::TooDeep(256))),
        ),
        (
            "duplicate key",
            b"d4:infode4:infodee".to_vec(),
            Box::new(bencode(DecodeErrorKind::DuplicateKey)),
        ),
        (
            "integer key",
            b"di1e1:ae".to_vec(),
            Box::new(bencode(DecodeErrorKind::NonStringKey)),
        ),
        (
            "leading zero",
            b"d4:infod6:lengthi01eee".to_vec(),
            Box::new(bencode(DecodeErrorKind::LeadingZero)),
        ),
        (
            "negative zero",
            b"d4:infod6:lengthi-0eee".to_vec(),
            Box::new(bencode(DecodeErrorKind::NegativeZero)),
        ),
        (
            "overflowing int",
            b"d4:infod6:lengthi99999999999999999999eee".to_vec(),
            Box::new(bencode(DecodeErrorKind::IntegerOverflow)),
        ),
    ];
    for (name, bytes, expected) in &cases {
        match Metainfo::from_bytes(bytes) {
            Ok(_) => panic!("{name}: accepted"),
            Err(error) => assert!(expected(&error), "{name}: unexpected error {error:?}"),
        }
    }
}

#[test]
fn file_count_limit_is_enforced() {
    let files: String = (0..11)
        .map(|i| format!("d6:lengthi1e4:pathl3:f{i:02}ee"))
        .collect();
    let bytes = multi(&format!("l{files}e"));
    let limits = Limits {
        max_files: 10,
        ..Limits::default()
    };
    assert_eq!(
        Metainfo::from_bytes_with(&bytes, &limits).unwrap_err(),
        MetainfoError::TooManyFiles {
            count: 11,
            limit: 10
        }
    );
    assert!(
        Metainfo::from_bytes_with(
            &bytes,
            &Limits {
                max_files: 11,
                ..limits
            }
        )
        .is_ok()
    );
}

#[test]
fn padding_files_may_repeat_their_names() {
    let bytes = multi_pieces(
        "ld6:lengthi1e4:pathl1:aeed4:attr1:p6:lengthi16383e4:pathl4:.pad5:16383eed6:lengthi1e4:pathl1:beed4:attr1:p6:lengthi16383e4:pathl4:.pad5:16383eee",
        2,
    );
    let torrent = Metainfo::from_bytes(&bytes).unwrap();
    let padding: Vec<bool> = torrent.files().iter().map(|f| f.is_padding()).collect();
    assert_eq!(padding, [false, true, false, true]);
    // Piece 1 starts exactly at file `b`: the padding aligned it.
    assert_eq!(
        torrent
            .piece_slices(1)
            .next()
            .map(|s| (s.file_index, s.offset)),
        Some((2, 0))
    );
}
