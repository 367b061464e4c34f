use bql_protocol::*;
use proptest::prelude::*;

proptest! {
    #[test]
    fn frames_survive_garbage_around_them(
        garbage in proptest::collection::vec(any::<u8>(), 0..64),
        frames in proptest::collection::vec((any::<u8>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40)), 1..6),
    ) {
        let mut stream = garbage.clone();
        for (code, seq, p) in &frames {
            stream.extend(encode_response(*code, *seq, p));
        }
        let mut d = Decoder::responses(64);
        // Byte by byte, as a serial port delivers them.
        let mut got = Vec::new();
        for b in &stream {
            d.push(&[*b]);
            while let Some(x) = d.next_frame() {
                if let Decoded::Frame(f) = x { got.push(f); }
            }
        }
        // Then the line goes quiet. A sync byte in the garbage may announce a length longer
        // than what follows and hold the real frames back until then: the host gives up on such
        // a stalled frame after a quiet spell (`skip_stalled`), and the search resumes one byte
        // after that sync byte.
        while d.pending() > 0 {
            d.skip_stalled();
            while let Some(x) = d.next_frame() {
                if let Decoded::Frame(f) = x { got.push(f); }
            }
        }
        // Garbage may by chance hold a valid frame before the real ones; the real ones all
        // arrive, in order, at the end.
        prop_assert!(got.len() >= frames.len());
        let tail = &got[got.len() - frames.len()..];
        for (f, (code, seq, p)) in tail.iter().zip(&frames) {
            prop_assert_eq!(f.head, *code);
            prop_assert_eq!(f.seq, *seq);
            prop_assert_eq!(&f.payload, p);
        }
    }

    #[test]
    fn a_flipped_bit_is_never_a_frame(
        seq in any::<u8>(),
        p in proptest::collection::vec(any::<u8>(), 0..40),
        bit in any::<prop::sample::Index>(),
    ) {
        let mut f = encode_response(0, seq, &p);
        let i = bit.index(f.len() * 8);
        f[i / 8] ^= 1 << (i % 8);
        let mut d = Decoder::responses(64);
        d.push(&f);
        while let Some(x) = d.next_frame() {
            if let Decoded::Frame(g) = x {
                // CRC-16 detects every single-bit error in the checked bytes; a flip in the
                // sync byte or the length leaves no complete frame at all.
                prop_assert!(false, "decoded {:?} from a corrupted frame", g);
            }
        }
    }

    #[test]
    fn info_and_status_round_trip(h in any::<u64>(), a in any::<u16>(), b in any::<u8>(), c in any::<u16>()) {
        let i = Info { arch_hash: h, image_bytes: a, classes: b as u16 + 1, score_bytes: 2, word_bytes: 8, max_payload: c, memories: 7, slots: b };
        prop_assert_eq!(Info::from_bytes(&i.to_bytes()), Some(i));
        let s = Status { load_checksum: a, crc_errors: b, overflows: 1, timeouts: 2, in_flight: 3, results: c };
        prop_assert_eq!(Status::from_bytes(&s.to_bytes()), Some(s));
    }
}

#[test]
fn result_scores_are_sign_extended() {
    let info = Info {
        classes: 3,
        score_bytes: 2,
        ..Info::default()
    };
    let r = parse_result(&info, &[2, 0, 0xFF, 0xFF, 5, 0, 0x00, 0x80, 0x34, 0x12]).unwrap();
    assert_eq!(r.class, 2);
    assert_eq!(r.scores, vec![-1, 5, -32768]);
    assert_eq!(r.load_checksum, 0x1234);
    assert_eq!(parse_result(&info, &[0, 1]), None);
}

#[test]
fn write_payload_pads_words_little_endian() {
    let w = vec![
        vec![true, false, false, false, false, false, false, false, true],
        vec![false; 3],
    ];
    assert_eq!(
        write_payload(3, 0x0102, &w, 4),
        vec![3, 2, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    );
}

#[test]
fn a_false_start_in_garbage_gives_way_when_the_line_goes_quiet() {
    // The case CI found: 0x5B, then a length of 20 where only the real 7-byte frame follows.
    let mut stream = vec![SYNC_RESPONSE, 0, 0, 20, 0];
    stream.extend(encode_response(0, 0, &[]));
    let mut d = Decoder::responses(64);
    d.push(&stream);
    assert_eq!(
        d.next_frame(),
        None,
        "the false start waits for its 20 bytes"
    );
    d.skip_stalled();
    let want = Frame {
        head: 0,
        seq: 0,
        payload: vec![],
    };
    assert_eq!(d.next_frame(), Some(Decoded::Frame(want)));
    assert_eq!(d.pending(), 0);
}
