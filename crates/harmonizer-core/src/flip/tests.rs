use super::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn switch_all() -> Flip<'static> {
    Flip {
        action: FlipAction::Switch,
        flip_id: 0x0102_0304_0506_0708,
        target: 2,
        cutover_pos: 1000,
        resume_pos: 0,
        not_before_ns: 0,
        expected_in_ns: 0,
        selector: Selector::All,
        locator: b"kafka://b/orders",
    }
}

fn announce_ids() -> Flip<'static> {
    Flip {
        action: FlipAction::Announce,
        flip_id: 7,
        target: 1,
        cutover_pos: 0,
        resume_pos: 0,
        not_before_ns: 0,
        expected_in_ns: 5_000_000_000,
        selector: Selector::Ids(IdList::new(&[42, 0xFFFF_FFFF_FFFF_FFFF]).unwrap()),
        locator: b"",
    }
}

fn cohort_switchback() -> Flip<'static> {
    Flip {
        action: FlipAction::Switchback,
        flip_id: 99,
        target: 0,
        cutover_pos: 0,
        resume_pos: 123_456,
        not_before_ns: 1_700_000_000_000_000_000,
        expected_in_ns: 0,
        selector: Selector::Cohort { basis_points: 1000, salt: 0xDEAD_BEEF },
        locator: b"x",
    }
}

/// Golden vectors: these bytes are the format (docs/flip-format.md). Their CRCs were computed
/// with an independent bitwise CRC-32C (Python), not with this crate's table. If a change breaks
/// one of these tests, it changed the wire format; that needs a new version number, not a new
/// vector.
type Vector = (&'static str, fn() -> Flip<'static>);

const GOLDEN: [Vector; 3] = [
    (
        "01010000 02000000 0807060504030201 e803000000000000 0000000000000000 0000000000000000
         0000000000000000 1000 6b61666b613a2f2f622f6f7264657273 bfc0590f",
        switch_all,
    ),
    (
        "01020100 01000000 0700000000000000 0000000000000000 0000000000000000 0000000000000000
         00f2052a01000000 02 2a00000000000000 ffffffffffffffff 0000 43792fef",
        announce_ids,
    ),
    (
        "01040200 00000000 6300000000000000 0000000000000000 40e2010000000000 00002a36fe9c9717
         0000000000000000 e803 efbeadde00000000 0100 78 bbd900c5",
        cohort_switchback,
    ),
];

#[test]
fn golden_vectors_decode_and_encode() {
    for (i, (bytes, flip)) in GOLDEN.iter().enumerate() {
        let bytes = unhex(bytes);
        let flip = flip();
        assert_eq!(hex(&flip.to_vec().unwrap()), hex(&bytes), "vector {i} encodes differently");
        assert_eq!(Flip::decode(&bytes), Ok(flip), "vector {i} decodes differently");
        assert_eq!(flip.encoded_len(), bytes.len());
    }
}

#[test]
fn splitmix64_is_the_standard_generator() {
    // The first two outputs of SplitMix64 seeded with 0.
    assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
    assert_eq!(splitmix64(0x9E37_79B9_7F4A_7C15), 0x6E78_9E6A_A1B9_65F4);
}

#[test]
fn raising_basis_points_only_adds_recipients() {
    let n: u64 = if cfg!(miri) { 300 } else { 20_000 };
    for salt in [0u64, 1, 0xDEAD_BEEF, u64::MAX] {
        let mut previous = vec![false; n as usize];
        for bp in [0u16, 1, 10, 1000, 5000, 9999, 10_000] {
            let cohort: Vec<bool> = (0..n).map(|id| in_cohort(id, salt, bp)).collect();
            for id in 0..n as usize {
                assert!(!previous[id] || cohort[id], "salt {salt}: raising to {bp} bp dropped {id}");
            }
            // The share is close to bp / 10000 (20000 recipients: within 1.5 points).
            let share = cohort.iter().filter(|c| **c).count() as f64 / n as f64;
            if !cfg!(miri) {
                assert!(
                    (share - f64::from(bp) / 10_000.0).abs() < 0.015,
                    "salt {salt} bp {bp}: share {share}"
                );
            }
            previous = cohort;
        }
        assert!(previous.iter().all(|c| *c), "10000 bp is everyone");
    }
}

#[test]
fn selectors() {
    assert!(Selector::All.selects(5));
    let ids = Selector::Ids(IdList::new(&[1, 2, 3]).unwrap());
    assert!(ids.selects(2) && !ids.selects(4));
    assert!(IdList::new(&[0; 33]).is_none());
    assert!(!Selector::Cohort { basis_points: 0, salt: 9 }.selects(5));
    assert!(Selector::Cohort { basis_points: 10_000, salt: 9 }.selects(5));
}

/// Re-computes the CRC after a deliberate corruption, so the value checks are reached.
fn with_crc(mut bytes: Vec<u8>) -> Vec<u8> {
    let n = bytes.len() - 4;
    let crc = crc32c(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

#[test]
fn every_malformation_has_its_reason() {
    let good = switch_all().to_vec().unwrap();
    let n = good.len();
    assert!(matches!(Flip::decode(&[]), Err(FlipError::Truncated { needed: 1, got: 0 })));
    assert!(matches!(Flip::decode(&good[..n - 1]), Err(FlipError::Truncated { .. })));
    let mut bad = good.clone();
    bad[10] ^= 1;
    assert!(matches!(Flip::decode(&bad), Err(FlipError::BadCrc { .. })));
    let mut v = good.clone();
    v[0] = 2;
    assert_eq!(Flip::decode(&v), Err(FlipError::UnknownVersion(2)));
    let mut v = good.clone();
    v[1] = 9;
    assert_eq!(Flip::decode(&with_crc(v)), Err(FlipError::UnknownAction(9)));
    let mut v = good.clone();
    v[1] = 0;
    assert_eq!(Flip::decode(&with_crc(v)), Err(FlipError::UnknownAction(0)));
    let mut v = good.clone();
    v[2] = 3;
    assert_eq!(Flip::decode(&v), Err(FlipError::UnknownSelector(3)));
    let mut v = good.clone();
    v[3] = 1;
    assert_eq!(Flip::decode(&with_crc(v)), Err(FlipError::ReservedNonZero(1)));
    let mut v = good.clone();
    v.push(0);
    assert_eq!(Flip::decode(&v), Err(FlipError::TrailingBytes(1)));

    // Too many ids (and none).
    let mut v = announce_ids().to_vec().unwrap();
    v[FIXED_LEN] = 33;
    assert_eq!(Flip::decode(&v), Err(FlipError::BadIdCount(33)));
    v[FIXED_LEN] = 0;
    assert_eq!(Flip::decode(&v), Err(FlipError::BadIdCount(0)));

    // Basis points above 10000.
    let mut v = cohort_switchback().to_vec().unwrap();
    v[FIXED_LEN..FIXED_LEN + 2].copy_from_slice(&10_001u16.to_le_bytes());
    assert_eq!(Flip::decode(&with_crc(v)), Err(FlipError::BasisPointsOutOfRange(10_001)));

    // Oversize locator.
    let mut v = switch_all().to_vec().unwrap();
    v[FIXED_LEN..FIXED_LEN + 2].copy_from_slice(&1025u16.to_le_bytes());
    assert_eq!(Flip::decode(&v), Err(FlipError::LocatorTooLong(1025)));

    for e in [FlipError::UnknownVersion(3), FlipError::BadCrc { computed: 1, stored: 2 }] {
        assert!(!e.to_string().is_empty() && !e.code().is_empty());
    }
}

#[test]
fn encode_refuses_what_decode_rejects() {
    let mut f = switch_all();
    let big = [0u8; MAX_LOCATOR + 1];
    f.locator = &big;
    assert_eq!(f.to_vec(), Err(FlipError::LocatorTooLong(MAX_LOCATOR + 1)));
    let mut f = switch_all();
    f.selector = Selector::Cohort { basis_points: 10_001, salt: 0 };
    assert_eq!(f.to_vec(), Err(FlipError::BasisPointsOutOfRange(10_001)));
    f.selector = Selector::Ids(IdList::new(&[]).unwrap());
    assert_eq!(f.to_vec(), Err(FlipError::BadIdCount(0)));
    let mut small = [0u8; 10];
    assert_eq!(switch_all().encode(&mut small), Err(FlipError::BufferTooSmall { needed: 70 }));
}

#[test]
fn every_truncation_of_a_valid_flip_is_rejected() {
    for f in [switch_all(), announce_ids(), cohort_switchback()] {
        let v = f.to_vec().unwrap();
        for n in 0..v.len() {
            assert!(Flip::decode(&v[..n]).is_err(), "prefix of {n} bytes accepted");
        }
    }
}

mod props {
    use super::super::*;
    use proptest::prelude::*;

    type Fields = (u8, u64, u32, [u64; 4], u8, Vec<u64>, u16, u64, Vec<u8>);

    fn flip_strategy() -> impl Strategy<Value = Fields> {
        (
            1u8..=4,
            any::<u64>(),
            any::<u32>(),
            any::<[u64; 4]>(),
            0u8..3,
            prop::collection::vec(any::<u64>(), 1..=32),
            0u16..=10_000,
            any::<u64>(),
            prop::collection::vec(any::<u8>(), 0..=64),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 8 } else { 512 }, failure_persistence: if cfg!(miri) { None } else { ProptestConfig::default().failure_persistence }, ..ProptestConfig::default() })]

        #[test]
        fn encode_then_decode_is_identity((a, id, target, t, sk, ids, bp, salt, loc) in flip_strategy()) {
            let selector = match sk {
                0 => Selector::All,
                1 => Selector::Ids(IdList::new(&ids).unwrap()),
                _ => Selector::Cohort { basis_points: bp, salt },
            };
            let f = Flip {
                action: FlipAction::from_u8(a).unwrap(),
                flip_id: id,
                target,
                cutover_pos: t[0],
                resume_pos: t[1],
                not_before_ns: t[2],
                expected_in_ns: t[3],
                selector,
                locator: &loc,
            };
            let v = f.to_vec().unwrap();
            prop_assert_eq!(Flip::decode(&v), Ok(f));
        }

        #[test]
        fn decode_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = Flip::decode(&bytes);
        }

        #[test]
        fn any_single_bit_flip_is_caught(pos in 0usize..70, bit in 0u8..8) {
            let mut v = super::switch_all().to_vec().unwrap();
            v[pos] ^= 1 << bit;
            prop_assert!(Flip::decode(&v).is_err());
        }
    }
}
