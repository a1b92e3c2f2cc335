use super::dh::{KEY_LEN, KeyPair};
use super::*;

const TORRENT: InfoHash = InfoHash::new([7; 20]);

/// Both sides' results, or the first error, with bytes delivered in chunks of `chunk`.
fn run(
    provide: CryptoMethods,
    allowed: CryptoMethods,
    prefer_rc4: bool,
    payload: &[u8],
    chunk: usize,
) -> Result<(Established, Established), MseError> {
    let mut dialer = Initiator::new(TORRENT, provide, payload, [1; 32])?;
    let mut listener = Responder::new(allowed, prefer_rc4, [2; 32]);
    let (mut dialer_done, mut listener_done) = (None, None);
    for _ in 0..10_000 {
        for piece in dialer.output().chunks(chunk) {
            match listener.receive(piece)? {
                Progress::NeedTorrent(hash) => {
                    assert_eq!(hash, req2_hash(&TORRENT));
                    if let Progress::Done(done) = listener.torrent_found(Some(TORRENT))? {
                        listener_done = Some(done);
                    }
                }
                Progress::Done(done) => listener_done = Some(done),
                Progress::Pending => {}
            }
        }
        for piece in listener.output().chunks(chunk) {
            if let Progress::Done(done) = dialer.receive(piece)? {
                dialer_done = Some(done);
            }
        }
        if let (Some(dialer), Some(listener)) = (dialer_done.take(), listener_done.take()) {
            return Ok((*dialer, *listener));
        }
    }
    panic!("the handshake did not finish");
}

#[test]
fn the_responder_selects_from_the_offer_as_libtorrent_does() {
    use CryptoMethods as M;
    let cases = [
        (M::ALL, M::ALL, false, Some(M::PLAINTEXT)),
        (M::ALL, M::ALL, true, Some(M::RC4)),
        (M::RC4, M::ALL, false, Some(M::RC4)),
        (M::PLAINTEXT, M::ALL, true, Some(M::PLAINTEXT)),
        (M::ALL, M::RC4, false, Some(M::RC4)),
        (M::ALL, M::PLAINTEXT, true, Some(M::PLAINTEXT)),
        (M::RC4, M::PLAINTEXT, false, None),
        (M::PLAINTEXT, M::RC4, false, None),
    ];
    for (provide, allowed, prefer_rc4, expected) in cases {
        let result = run(provide, allowed, prefer_rc4, b"initial", 4096);
        match expected {
            Some(method) => {
                let (dialer, listener) = result.expect("handshake");
                assert_eq!((dialer.method, listener.method), (method, method));
                assert_eq!(dialer.cipher.is_some(), method == M::RC4);
                assert_eq!(listener.payload, b"initial");
                assert_eq!(listener.info_hash, TORRENT);
            }
            None => assert!(matches!(result, Err(MseError::NoCommonMethod(_)))),
        }
    }
}

#[test]
fn byte_by_byte_delivery_and_a_large_initial_payload_work() {
    let payload: Vec<u8> = (0..=250u8).cycle().take(5000).collect();
    let (dialer, listener) =
        run(CryptoMethods::RC4, CryptoMethods::ALL, false, &payload, 1).expect("handshake");
    assert_eq!(listener.payload, payload);
    assert!(dialer.payload.is_empty());
}

#[test]
fn the_ciphers_carry_the_stream_both_ways_after_the_handshake() {
    let (dialer, listener) =
        run(CryptoMethods::RC4, CryptoMethods::ALL, false, b"", 4096).expect("handshake");
    let (mut a, mut b) = (dialer.cipher.expect("rc4"), listener.cipher.expect("rc4"));
    for round in 0..3u8 {
        let mut there = [round; 100];
        a.encrypt.apply(&mut there);
        assert_ne!(there, [round; 100]);
        b.decrypt.apply(&mut there);
        assert_eq!(there, [round; 100]);
        let mut back = [round + 1; 50];
        b.encrypt.apply(&mut back);
        a.decrypt.apply(&mut back);
        assert_eq!(back, [round + 1; 50]);
    }
}

#[test]
fn bytes_right_after_the_answer_reach_the_initiator_decrypted() {
    let mut dialer = Initiator::new(TORRENT, CryptoMethods::RC4, b"hs", [3; 32]).expect("new");
    let mut listener = Responder::new(CryptoMethods::ALL, false, [4; 32]);
    assert!(matches!(
        listener.receive(&dialer.output()),
        Ok(Progress::Pending)
    ));
    assert!(matches!(
        dialer.receive(&listener.output()),
        Ok(Progress::Pending)
    ));
    assert!(matches!(
        listener.receive(&dialer.output()),
        Ok(Progress::NeedTorrent(_))
    ));
    let Ok(Progress::Done(done)) = listener.torrent_found(Some(TORRENT)) else {
        panic!("listener not done");
    };
    let mut cipher = done.cipher.expect("rc4");
    let mut answer = listener.output();
    let mut handshake = *b"their handshake";
    cipher.encrypt.apply(&mut handshake);
    answer.extend_from_slice(&handshake);
    let Ok(Progress::Done(done)) = dialer.receive(&answer) else {
        panic!("dialer not done");
    };
    assert_eq!(done.payload, b"their handshake");
}

#[test]
fn an_unknown_or_wrong_torrent_fails_the_handshake() {
    for found in [None, Some(InfoHash::new([8; 20]))] {
        let mut dialer = Initiator::new(TORRENT, CryptoMethods::ALL, b"", [5; 32]).expect("new");
        let mut listener = Responder::new(CryptoMethods::ALL, false, [6; 32]);
        listener.receive(&dialer.output()).expect("key");
        dialer.receive(&listener.output()).expect("key");
        listener.receive(&dialer.output()).expect("proof");
        let error = listener.torrent_found(found).expect_err("must fail");
        let expected = if found.is_none() {
            MseError::UnknownTorrent
        } else {
            MseError::BadVerification
        };
        assert_eq!(error, expected);
        assert_eq!(listener.receive(b"more").map(|_| ()), Err(MseError::Ended));
    }
}

#[test]
fn garbage_after_the_key_fails_within_the_pad_bound() {
    let mut listener = Responder::new(CryptoMethods::ALL, false, [9; 32]);
    let key = KeyPair::new(&[3; 20]).public;
    assert!(matches!(listener.receive(&key), Ok(Progress::Pending)));
    let mut fed = 0;
    let error = loop {
        match listener.receive(&[0xAB; 7]) {
            Ok(_) => fed += 7,
            Err(error) => break error,
        }
        assert!(fed < 2 * MAX_PAD, "no verdict after {fed} bytes");
    };
    assert_eq!(error, MseError::NoSync);
    assert!(fed <= MAX_PAD + 20);

    let mut dialer = Initiator::new(TORRENT, CryptoMethods::ALL, b"", [1; 32]).expect("new");
    dialer.receive(&key).expect("key");
    assert_eq!(
        dialer.receive(&[0xCD; 600]).map(|_| ()),
        Err(MseError::NoSync)
    );
}

#[test]
fn degenerate_keys_are_refused() {
    let mut prime_minus_one = [0xFF; KEY_LEN];
    let one = {
        let mut one = [0; KEY_LEN];
        one[KEY_LEN - 1] = 1;
        one
    };
    // Not P−1 itself, but beyond P: also refused.
    prime_minus_one[KEY_LEN - 1] = 0xFE;
    for key in [[0; KEY_LEN], one, prime_minus_one] {
        let mut listener = Responder::new(CryptoMethods::ALL, false, [9; 32]);
        assert_eq!(
            listener.receive(&key).map(|_| ()),
            Err(MseError::InvalidKey)
        );
    }
}

#[test]
fn both_sides_derive_the_same_secret() {
    let (a, b) = (KeyPair::new(&[1; 20]), KeyPair::new(&[2; 20]));
    assert_eq!(a.shared_secret(&b.public), b.shared_secret(&a.public));
    let mut two = [0; KEY_LEN];
    two[KEY_LEN - 1] = 2;
    let mut private_one = [0; 20];
    private_one[19] = 1;
    assert_eq!(KeyPair::new(&private_one).public, two);
}

#[test]
fn an_oversized_pad_or_flood_is_refused() {
    // An honest key and proof, then an offer whose PadC length is 513.
    let mut listener = Responder::new(CryptoMethods::ALL, false, [9; 32]);
    let ours = KeyPair::new(&[3; 20]);
    listener.receive(&ours.public).expect("key");
    let reply = listener.output();
    let secret = ours.shared_secret(&reply[..KEY_LEN]).expect("secret");
    let mut proof = hash(&[b"req1", &secret]).to_vec();
    let (req2, req3) = (req2_hash(&TORRENT), hash(&[b"req3", &secret]));
    proof.extend(req2.iter().zip(req3.iter()).map(|(a, b)| a ^ b));
    let mut offer = VC.to_vec();
    offer.extend_from_slice(&CryptoMethods::RC4.bits().to_be_bytes());
    offer.extend_from_slice(&513u16.to_be_bytes());
    keystream(b"keyA", &secret, &TORRENT).apply(&mut offer);
    proof.extend_from_slice(&offer);
    assert!(matches!(
        listener.receive(&proof),
        Ok(Progress::NeedTorrent(_))
    ));
    assert_eq!(
        listener.torrent_found(Some(TORRENT)).map(|_| ()),
        Err(MseError::PadTooLong(513))
    );

    let mut flooded = Responder::new(CryptoMethods::ALL, false, [9; 32]);
    assert_eq!(
        flooded.receive(&vec![1; MAX_BUFFERED + 1]).map(|_| ()),
        Err(MseError::TooMuchData)
    );
}

#[test]
fn the_same_entropy_replays_the_same_bytes() {
    let first = Initiator::new(TORRENT, CryptoMethods::ALL, b"x", [4; 32])
        .expect("new")
        .output();
    let again = Initiator::new(TORRENT, CryptoMethods::ALL, b"x", [4; 32])
        .expect("new")
        .output();
    let other = Initiator::new(TORRENT, CryptoMethods::ALL, b"x", [5; 32])
        .expect("new")
        .output();
    assert_eq!(first, again);
    assert_ne!(first, other);
    assert!(first.len() >= KEY_LEN && first.len() <= KEY_LEN + MAX_PAD);
}

#[test]
fn a_plain_handshake_is_told_apart() {
    let mut plain = vec![19u8];
    plain.extend_from_slice(crate::PROTOCOL);
    assert!(is_plain_handshake(&plain));
    assert!(!is_plain_handshake(&plain[..10]));
    assert!(!is_plain_handshake(&KeyPair::new(&[1; 20]).public));
}
