//! MSE handshakes: a responder and an initiator fed any bytes, in any chunks, end in progress
//! or a typed error, never a panic; and an honest initiator's bytes with fuzzed corruption
//! (which reaches the states behind the synchronisation hash) do the same to a responder.
#![no_main]

use cratetorrent_wire::InfoHash;
use cratetorrent_wire::mse::{CryptoMethods, Initiator, Progress, Responder, req2_hash};
use libfuzzer_sys::fuzz_target;

const TORRENT: InfoHash = InfoHash::new([7; 20]);

/// Feeds `bytes` in chunks whose sizes come from `sizes`; answers torrent lookups.
fn feed(responder: &mut Responder, bytes: &[u8], sizes: &[u8]) {
    let mut at = 0;
    for &size in sizes.iter().cycle().take(bytes.len() + 1) {
        if at >= bytes.len() {
            return;
        }
        let end = (at + usize::from(size).max(1)).min(bytes.len());
        let progress = match responder.receive(&bytes[at..end]) {
            Ok(Progress::NeedTorrent(hash)) => {
                responder.torrent_found((hash == req2_hash(&TORRENT)).then_some(TORRENT))
            }
            other => other,
        };
        match progress {
            Ok(Progress::Done(_)) | Err(_) => return,
            Ok(_) => at = end,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (sizes, body) = rest.split_at(rest.len().min(8));
    let sizes = if sizes.is_empty() { &[255u8][..] } else { sizes };
    match mode % 3 {
        0 => {
            let mut responder = Responder::new(CryptoMethods::ALL, mode & 4 != 0, [1; 32]);
            feed(&mut responder, body, sizes);
        }
        1 => {
            let Ok(mut initiator) = Initiator::new(TORRENT, CryptoMethods::ALL, b"hs", [2; 32])
            else {
                return;
            };
            for chunk in body.chunks(usize::from(sizes[0]).max(1)) {
                if !matches!(initiator.receive(chunk), Ok(Progress::Pending)) {
                    break;
                }
            }
        }
        _ => {
            // An honest exchange up to the initiator's proof, then corruption of the proof at
            // offsets and with masks taken from the input.
            let Ok(mut initiator) = Initiator::new(TORRENT, CryptoMethods::ALL, body, [3; 32])
            else {
                return;
            };
            let mut responder = Responder::new(CryptoMethods::ALL, false, [4; 32]);
            let _ = responder.receive(&initiator.output());
            let _ = initiator.receive(&responder.output());
            let mut proof = initiator.output();
            for pair in sizes.chunks(2) {
                if let [at, mask] = pair {
                    if !proof.is_empty() {
                        let at = usize::from(*at) * 7 % proof.len();
                        proof[at] ^= mask;
                    }
                }
            }
            feed(&mut responder, &proof, sizes);
        }
    }
});
