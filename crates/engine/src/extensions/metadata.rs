//! BEP 9 `ut_metadata`: peers ask for our info dictionary in 16 KiB pieces and we send them (or
//! reject a piece past the end). The message format is the wire crate's [`MetadataMessage`].

use bytes::Bytes;
use cratetorrent_wire::{MetadataMessage, UT_METADATA, metadata_piece_len};

pub(super) const NAME: &str = UT_METADATA;

/// What answers a request for metadata piece `piece` of `info` (the bencoded info dictionary).
pub(crate) fn answer(info: &Bytes, piece: u32) -> MetadataMessage {
    let total_size = info.len() as u64;
    match metadata_piece_len(total_size, piece) {
        Some(len) => {
            let start = piece as usize * cratetorrent_wire::METADATA_PIECE_LEN as usize;
            MetadataMessage::Data {
                piece,
                total_size,
                data: info.slice(start..start + len as usize),
            }
        }
        None => MetadataMessage::Reject { piece },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_views_of_the_info_dictionary_and_past_the_end_is_rejected() {
        let info = Bytes::from((0..40_000u32).map(|i| i as u8).collect::<Vec<_>>());
        let MetadataMessage::Data {
            piece,
            total_size,
            data,
        } = answer(&info, 2)
        else {
            panic!("piece 2 exists");
        };
        assert_eq!(
            (piece, total_size, data.len()),
            (2, 40_000, 40_000 - 32_768)
        );
        assert_eq!(data.as_ptr(), info[32_768..].as_ptr(), "not copied");
        assert_eq!(answer(&info, 3), MetadataMessage::Reject { piece: 3 });
    }
}
