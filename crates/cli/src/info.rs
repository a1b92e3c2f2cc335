//! `cratetorrent info`: what a `.torrent` file or magnet link describes.

use cratetorrent_metainfo::{Magnet, MetaVersion, Metainfo};
use serde_json::json;

use crate::error::{CliError, Result};
use crate::escape::{escape, escape_path, json_line};
use crate::output::outln;
use crate::source::{is_magnet, load};
use crate::units::format_bytes;

pub(crate) fn run(source: &str, files_only: bool, as_json: bool) -> Result<()> {
    if is_magnet(source) {
        if files_only {
            return Err(CliError::new(
                "a magnet link has no file list until its metadata is fetched: download it \
                 with --save-torrent FILE, then `cratetorrent info --files FILE`",
            ));
        }
        return magnet(source, as_json);
    }
    let torrent = load(source)?;
    if files_only && !as_json {
        print_files(&torrent);
        return Ok(());
    }
    if as_json {
        outln!("{}", json_line(&to_json(&torrent)));
        return Ok(());
    }
    outln!("info-hash: {}", torrent.info_hash());
    if let Some(v2) = torrent.info_hashes().v2 {
        outln!("info-hash v2: {v2}");
    }
    outln!("version:   {}", version_name(torrent.meta_version()));
    outln!("magnet:    {}", escape(&torrent.magnet().to_string()));
    outln!("name:      {}", escape(torrent.name()));
    outln!(
        "size:      {} bytes ({})",
        torrent.total_length(),
        format_bytes(torrent.total_length())
    );
    outln!(
        "pieces:    {} x {}",
        torrent.piece_count(),
        format_bytes(u64::from(torrent.piece_length()))
    );
    outln!(
        "private:   {}",
        if torrent.is_private() { "yes" } else { "no" }
    );
    if let Some(comment) = torrent.comment() {
        outln!("comment:   {}", escape(comment));
    }
    if let Some(created_by) = torrent.created_by() {
        outln!("created by: {}", escape(created_by));
    }
    for (index, tier) in torrent.trackers().iter().enumerate() {
        outln!("tier {index}:    {}", escape(&tier.join(" ")));
    }
    for seed in torrent.url_list() {
        outln!("web seed:  {}", escape(seed));
    }
    outln!("files:");
    print_files(&torrent);
    Ok(())
}

fn version_name(version: MetaVersion) -> &'static str {
    match version {
        MetaVersion::V1 => "v1",
        MetaVersion::V2 => "v2 (BEP 52)",
        MetaVersion::Hybrid => "hybrid v1 + v2 (BEP 52)",
    }
}

/// `  index  size  path`, the index being what `--only` takes.
fn print_files(torrent: &Metainfo) {
    for (index, file) in torrent.files().iter().enumerate() {
        if !file.is_padding() {
            outln!(
                "  {index:>4} {:>10}  {}",
                format_bytes(file.length()),
                escape_path(&file.path())
            );
        }
    }
}

/// The `info --json` object. File paths are listed as libtorrent shows them: components
/// from the torrent's root (its name first for a multi-file torrent).
fn to_json(torrent: &Metainfo) -> serde_json::Value {
    let files: Vec<serde_json::Value> = torrent
        .files()
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.is_padding())
        .map(|(index, file)| {
            let path: Vec<String> = file
                .path()
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            json!({ "index": index, "path": path, "length": file.length() })
        })
        .collect();
    json!({
        "info_hash": torrent.info_hash().to_hex(),
        "info_hash_v2": torrent.info_hashes().v2.map(|h| h.to_hex()),
        "meta_version": if torrent.meta_version().has_v2() { 2 } else { 1 },
        "hybrid": torrent.is_hybrid(),
        "magnet": torrent.magnet().to_string(),
        "name": torrent.name(),
        "total_length": torrent.total_length(),
        "piece_length": torrent.piece_length(),
        "num_pieces": torrent.piece_count(),
        "private": torrent.is_private(),
        "trackers": torrent.trackers(),
        "web_seeds": torrent.url_list(),
        "comment": torrent.comment(),
        "created_by": torrent.created_by(),
        "files": files,
    })
}

fn magnet(source: &str, as_json: bool) -> Result<()> {
    let magnet = Magnet::parse(source).map_err(|e| CliError::with(source, &e))?;
    let hash = magnet.info_hash.map(|h| h.to_hex());
    let hash_v2 = magnet.info_hash_v2.map(|h| h.to_hex());
    if as_json {
        let peers: Vec<String> = magnet.peers.iter().map(ToString::to_string).collect();
        let value = json!({
            "info_hash": hash,
            "info_hash_v2": hash_v2,
            "name": magnet.display_name,
            "trackers": magnet.trackers,
            "peers": peers,
        });
        outln!("{}", json_line(&value));
        return Ok(());
    }
    outln!("info-hash: {}", hash.as_deref().unwrap_or("(v2 only)"));
    if let Some(v2) = &hash_v2 {
        outln!("info-hash v2: {v2}");
    }
    outln!(
        "name:      {}",
        escape(magnet.display_name.as_deref().unwrap_or("(unknown)"))
    );
    for tracker in &magnet.trackers {
        outln!("tracker:   {}", escape(tracker));
    }
    for peer in &magnet.peers {
        outln!("peer:      {peer}");
    }
    Ok(())
}
