//! BEP 9 `ut_metadata` messages: any payload decodes, is ignored (an unknown type) or fails with a
//! typed error; a decoded message re-encodes to one that decodes to the same value, and data
//! never exceeds one metadata piece.
#![no_main]

use bytes::Bytes;
use cratetorrent_wire::{METADATA_PIECE_LEN, MetadataMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(message)) = MetadataMessage::decode(&Bytes::copy_from_slice(data)) {
        if let MetadataMessage::Data { data, .. } = &message {
            assert!(!data.is_empty() && data.len() <= METADATA_PIECE_LEN as usize);
        }
        let encoded = message.encode();
        assert_eq!(MetadataMessage::decode(&encoded), Ok(Some(message)));
    }
});
