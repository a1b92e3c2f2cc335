//! Shared fixtures for cratetorrent's benchmarks.

use cratetorrent_metainfo::bencode::{DictBuilder, Encode};

/// A synthetic multi-file `.torrent` shaped like a large real one: `files` files in nested
/// directories, `pieces` piece hashes, and the usual top-level fields.
pub fn large_torrent(files: usize, pieces: usize) -> Vec<u8> {
    let piece_length: u32 = 1 << 20;
    let total = pieces as u64 * u64::from(piece_length);
    let per_file = total / files as u64;
    let mut list = Vec::with_capacity(files);
    for index in 0..files {
        let length = if index + 1 == files {
            total - per_file * (files as u64 - 1)
        } else {
            per_file
        };
        let mut entry = DictBuilder::new();
        let path = vec![
            format!("disc{}", index % 10),
            format!("track {index:05}.flac"),
        ];
        entry.insert("length", length as i64).insert("path", &path);
        list.push(entry);
    }
    // Pseudo-random hash bytes: the content does not matter to the parser, only the size.
    let hashes: Vec<u8> = (0..pieces * 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut info = DictBuilder::new();
    info.insert("name", "large collection")
        .insert("piece length", piece_length)
        .insert("pieces", hashes.as_slice())
        .insert("files", list);
    let mut torrent = DictBuilder::new();
    torrent
        .insert("announce", "udp://tracker.example.org:6969/announce")
        .insert("comment", "synthetic benchmark torrent")
        .insert("created by", "cratetorrent-benches")
        .insert("creation date", 1_700_000_000i64)
        .insert("info", info);
    torrent.to_bencode()
}
