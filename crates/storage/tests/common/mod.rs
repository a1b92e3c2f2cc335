//! Torrent fixtures shared by the storage tests.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::cast_possible_truncation
)]

use bytes::Bytes;
use cratetorrent_metainfo::Metainfo;
use cratetorrent_metainfo::bencode::{DictBuilder, Encode};
use cratetorrent_storage::BackendKind;
use cratetorrent_wire::{BlockInfo, Geometry};
use sha1::{Digest, Sha1};

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A torrent over `files` (name, length, padding) with `piece_length`, and its payload.
pub struct Fixture {
    pub metainfo: Metainfo,
    pub payload: Vec<u8>,
    pub files: Vec<(String, usize, bool)>,
}

pub fn fixture(files: &[(&str, usize, bool)], piece_length: u32) -> Fixture {
    fixture_named("t", files, piece_length)
}

/// [`fixture`] with the torrent (its root directory) named `name`.
pub fn fixture_named(name: &str, files: &[(&str, usize, bool)], piece_length: u32) -> Fixture {
    let mut payload = Vec::new();
    let mut entries = Vec::new();
    for (index, (name, len, padding)) in files.iter().enumerate() {
        payload.extend(if *padding {
            vec![0; *len]
        } else {
            data(*len, index as u64 + 7)
        });
        let mut entry = DictBuilder::new();
        entry
            .insert("length", *len as i64)
            .insert("path", name.split('/').collect::<Vec<_>>());
        if *padding {
            entry.insert("attr", "p");
        }
        entries.push(entry);
    }
    let hashes: Vec<u8> = payload
        .chunks(piece_length as usize)
        .flat_map(|c| <[u8; 20]>::from(Sha1::digest(c)))
        .collect();
    let mut info = DictBuilder::new();
    info.insert("files", entries)
        .insert("name", name)
        .insert("piece length", piece_length)
        .insert("pieces", hashes.as_slice());
    let mut torrent = DictBuilder::new();
    torrent.insert("info", info);
    let metainfo = Metainfo::from_bytes(&torrent.to_bencode()).unwrap();
    Fixture {
        metainfo,
        payload,
        files: files
            .iter()
            .map(|(n, l, p)| (n.to_string(), *l, *p))
            .collect(),
    }
}

/// A single-file torrent named `name` of `len` bytes with `piece_length`, and its payload.
pub fn single_fixture(name: &str, len: usize, piece_length: u32) -> Fixture {
    let payload = data(len, 3);
    let hashes: Vec<u8> = payload
        .chunks(piece_length as usize)
        .flat_map(|c| <[u8; 20]>::from(Sha1::digest(c)))
        .collect();
    let mut info = DictBuilder::new();
    info.insert("length", len as i64)
        .insert("name", name)
        .insert("piece length", piece_length)
        .insert("pieces", hashes.as_slice());
    let mut torrent = DictBuilder::new();
    torrent.insert("info", info);
    Fixture {
        metainfo: Metainfo::from_bytes(&torrent.to_bencode()).unwrap(),
        payload,
        files: vec![(String::new(), len, false)],
    }
}

/// Every block of the torrent, in a seeded shuffled order.
pub fn blocks(fixture: &Fixture, seed: u64) -> Vec<BlockInfo> {
    let geometry = Geometry::of(&fixture.metainfo);
    let mut all: Vec<BlockInfo> = (0..geometry.piece_count())
        .flat_map(|p| geometry.blocks(p).collect::<Vec<_>>())
        .collect();
    let mut state = seed | 1;
    for i in (1..all.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        all.swap(i, (state % (i as u64 + 1)) as usize);
    }
    all
}

pub fn block_data(fixture: &Fixture, block: BlockInfo) -> Bytes {
    let start =
        block.piece as usize * fixture.metainfo.piece_length() as usize + block.offset as usize;
    Bytes::copy_from_slice(&fixture.payload[start..start + block.len as usize])
}

/// The environment variable that names the backend a re-executed child test uses.
pub const CHILD_BACKEND: &str = "CT_CHILD_BACKEND";

/// The backend named in a child's environment (`portable`, else io_uring).
pub fn child_backend() -> BackendKind {
    match std::env::var(CHILD_BACKEND).as_deref() {
        Ok("portable") => BackendKind::Portable,
        _ => BackendKind::IoUring,
    }
}
