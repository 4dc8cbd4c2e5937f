//! Round trips, corruption, the sparse form and the first format.

use super::builder::seal;
use super::*;

#[test]
fn items_round_trip_and_partial() {
    let mut b = RecordBuilder::new(KIND_ITEMS, 5).unwrap();
    b.set(0, b"a").unwrap();
    b.set(3, b"dddd").unwrap();
    let bytes = b.finish();
    let v = RecordView::parse(&bytes).unwrap();
    assert_eq!(v.present, 2);
    assert!(v.is_present(0) && !v.is_present(1) && v.is_present(3));
    assert_eq!(v.point(3), b"dddd");
    assert_eq!(v.point(1), b"");
}

#[test]
fn typed_round_trip() {
    let mut b = RecordBuilder::new(DType::F64 as u8, 3).unwrap();
    for i in 0..3 {
        b.set(i, &(i as f64 * 1.5).to_le_bytes()).unwrap();
    }
    let bytes = b.finish();
    let v = RecordView::parse(&bytes).unwrap();
    assert!(v.is_complete());
    assert_eq!(v.point(2), 3.0f64.to_le_bytes());
    assert!(b.set(0, &[0u8; 4]).is_ok(), "present points are kept, not rewritten");
}

#[test]
fn dictionaries_are_kept_per_point_and_deduplicated() {
    let mut b = RecordBuilder::new(KIND_ITEMS, 4).unwrap();
    b.set_in(0, b"p0", b"dictA").unwrap();
    b.set_in(1, b"p1", b"dictB").unwrap();
    b.set_in(2, b"p2", b"dictA").unwrap();
    b.set(3, b"plain").unwrap();
    let bytes = b.finish();
    let v = RecordView::parse(&bytes).unwrap();
    assert_eq!(v.dicts().len(), 3);
    assert_eq!(v.point_dict(0), b"dictA");
    assert_eq!(v.point_dict(1), b"dictB");
    assert_eq!(v.point_dict(2), b"dictA");
    assert_eq!(v.point_dict(3), b"");
    // Rebuilding from the view keeps each point's dictionary.
    let again = RecordBuilder::from_view(&v).unwrap().finish();
    assert_eq!(again, bytes);
    // A dictionary no present point uses is dropped.
    let mut c = RecordBuilder::new(KIND_ITEMS, 2).unwrap();
    c.set_in(1, b"x", b"only").unwrap();
    let v = RecordView::parse(&c.finish()).unwrap().dicts().len();
    assert_eq!(v, 1);
}

#[test]
fn corruption_detected() {
    let mut b = RecordBuilder::new(KIND_ITEMS, 2).unwrap();
    b.set(1, b"xyz").unwrap();
    let mut bytes = b.finish();
    let k = bytes.len() - 10;
    bytes[k] ^= 0x40;
    assert!(RecordView::parse(&bytes).is_err());
    assert!(RecordView::parse(&bytes[..5]).is_err());
}

#[test]
fn dense_offsets_that_decrease_are_corruption() {
    let mut b = RecordBuilder::new(KIND_ITEMS, 3).unwrap();
    for (i, v) in [&b"ab"[..], b"c", b"de"].into_iter().enumerate() {
        b.set(i, v).unwrap();
    }
    let good = b.finish();
    let v = RecordView::parse(&good).unwrap();
    let items = v.dense_items().unwrap();
    assert_eq!((items.data, &items.offsets[..]), (&b"abcde"[..], &[0u32, 2, 3, 5][..]));
    // Offsets 0, 2, 3, 5 become 0, 3, 2, 5, and the checksum is made to match.
    let body = good.len() - 8;
    let at = body - 5 - 16 + 4;
    assert_eq!(&good[at..at + 8], &[2, 0, 0, 0, 3, 0, 0, 0]);
    let mut bad = good[..body].to_vec();
    bad[at] = 3;
    bad[at + 4] = 2;
    let bad = seal(bad);
    assert!(RecordView::parse(&bad).unwrap_err().message.contains("offsets decrease"));
}

#[test]
fn a_point_naming_a_missing_dictionary_is_corruption() {
    let mut b = RecordBuilder::new(KIND_ITEMS, 3).unwrap();
    b.set_in(0, b"p0", b"dictA").unwrap();
    b.set_in(1, b"p1", b"dictB").unwrap();
    b.set_in(2, b"p2", b"dictA").unwrap();
    let good = b.finish();
    let v = RecordView::parse(&good).unwrap();
    assert_eq!((v.dicts().len(), v.point_dict(1)), (2, &b"dictB"[..]));
    // From the end: checksum, data (6 bytes), 4 offsets, 3 dictionary
    // indices padded to 8 bytes; point 1's index (1) becomes 2 (no such
    // dictionary), the checksum made to match.
    let body = good.len() - 8;
    let at = body - 6 - 16 - 8 + 2;
    assert_eq!(&good[at..at + 2], &[1, 0]);
    let mut bad = good[..body].to_vec();
    bad[at] = 2;
    let bad = seal(bad);
    assert!(RecordView::parse(&bad).unwrap_err().message.contains("missing dictionary"));
    // The check that keeps nothing counts the dictionaries the same way.
    assert_eq!(RecordView::verify_head(&good).unwrap(), v.head());
    assert!(RecordView::verify_head(&bad).unwrap_err().message.contains("missing dictionary"));
}

#[test]
fn checking_a_record_for_its_head_agrees_with_parse() {
    let mut items = RecordBuilder::new(KIND_ITEMS, 4).unwrap();
    items.set_in(0, b"p0", b"dictA").unwrap();
    items.set_in(2, b"p2", b"dictB").unwrap();
    items.set(3, b"p3").unwrap();
    let mut typed = RecordBuilder::new(DType::F64 as u8, 3).unwrap();
    for i in 0..3 {
        typed.set(i, &(i as f64).to_le_bytes()).unwrap();
    }
    let mut sparse = RecordBuilder::new(KIND_ITEMS, 100_000).unwrap();
    sparse.set(7, b"x").unwrap();
    for good in [items.finish(), typed.finish(), sparse.finish()] {
        let head = RecordView::parse(&good).unwrap().head();
        assert_eq!(RecordView::verify_head(&good).unwrap(), head);
        // Any flipped byte, and any cut: both fail, or both give the head.
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            let (a, b) = (RecordView::parse(&bad).map(|v| v.head()), RecordView::verify_head(&bad));
            assert_eq!(a.map_err(|e| e.message), b.map_err(|e| e.message), "byte {at} flipped");
            let (a, b) = (RecordView::parse(&good[..at]).map(|v| v.head()), RecordView::verify_head(&good[..at]));
            assert_eq!(a.map_err(|e| e.message), b.map_err(|e| e.message), "cut at {at}");
        }
    }
}

/// A tiny deterministic generator (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[test]
fn random_writes_and_reads_match_a_reference_map() {
    use std::collections::BTreeMap;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..300 {
        let kind = if round % 2 == 0 { KIND_ITEMS } else { DType::F32 as u8 };
        let n = [1usize, 7, 64, 1000, 5000][rng.below(5) as usize];
        // Densities from a few points to complete records.
        let writes = [1usize, 3, 10, n / 2, n * 3][rng.below(5) as usize].max(1);
        let mut reference: BTreeMap<usize, (Vec<u8>, Vec<u8>)> = BTreeMap::new();
        let mut bytes = RecordBuilder::new(kind, n).unwrap().finish();
        // Several updates, each a rebuild from the stored record as the
        // store does.
        for _ in 0..1 + rng.below(4) {
            let v = RecordView::parse(&bytes).unwrap();
            let mut b = RecordBuilder::from_view(&v).unwrap();
            for _ in 0..writes / 2 + 1 {
                let i = rng.below(n as u64) as usize;
                let (val, dict) = if kind == KIND_ITEMS {
                    let len = rng.below(6) as usize;
                    let val: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                    let dict = [b"".to_vec(), b"d1".to_vec(), b"d2".to_vec()][rng.below(3) as usize].clone();
                    (val, dict)
                } else {
                    ((rng.next() as u32).to_le_bytes().to_vec(), Vec::new())
                };
                b.set_in(i, &val, &dict).unwrap();
                reference.entry(i).or_insert((val, dict));
            }
            bytes = b.finish();
        }
        let v = RecordView::parse(&bytes).unwrap();
        assert_eq!(v.n, n);
        assert_eq!(v.present, reference.len());
        assert_eq!(v.is_complete(), reference.len() == n);
        if v.is_complete() {
            assert!(!v.is_sparse(), "complete records are dense");
        }
        if reference.len() * 10 < n {
            assert!(v.is_sparse(), "a record with few points is sparse (n {n}, {})", reference.len());
        }
        for i in 0..n {
            match reference.get(&i) {
                Some((val, dict)) => {
                    assert!(v.is_present(i));
                    assert_eq!(v.point(i), val.as_slice());
                    assert_eq!(v.point_dict(i), dict.as_slice());
                }
                None => assert!(!v.is_present(i)),
            }
        }
        assert_eq!(v.present_points().collect::<Vec<_>>(), reference.keys().copied().collect::<Vec<_>>());
        // Rebuilding gives the same bytes; any flipped byte is caught.
        assert_eq!(RecordBuilder::from_view(&v).unwrap().finish(), bytes);
        let mut bad = bytes.clone();
        let k = rng.below(bad.len() as u64) as usize;
        bad[k] ^= 1 << rng.below(8);
        assert!(RecordView::parse(&bad).is_err());
    }
}

#[test]
fn a_sparse_record_costs_its_points_not_its_chunk() {
    // 10,000 x 10,000 points, 6 present.
    let n = 100_000_000;
    let mut b = RecordBuilder::new(DType::F64 as u8, n).unwrap();
    for (k, i) in [5usize, 99, 123_456, 50_000_000, 77_777_777, n - 1].into_iter().enumerate() {
        b.set(i, &(k as f64).to_le_bytes()).unwrap();
    }
    let bytes = b.finish();
    assert!(bytes.len() < 200, "{} bytes", bytes.len());
    let v = RecordView::parse(&bytes).unwrap();
    assert!(v.is_sparse() && v.present == 6 && v.is_present(77_777_777) && !v.is_present(77_777_778));
    assert_eq!(v.point(n - 1), 5f64.to_le_bytes());
    let mut items = RecordBuilder::new(KIND_ITEMS, n).unwrap();
    items.set_in(42, b"\x93\x01\x02\x03", b"dict").unwrap();
    let bytes = items.finish();
    assert!(bytes.len() < 100, "{} bytes", bytes.len());
    assert_eq!(RecordView::parse(&bytes).unwrap().point_dict(42), b"dict");
}

#[test]
fn records_of_the_first_format_are_read() {
    // A CMR1 items record of 3 points written by the first writer:
    // point 1 = "ab" packed with dictionary "D".
    let mut old = Vec::new();
    old.extend_from_slice(b"CMR1");
    old.extend_from_slice(&[KIND_ITEMS, 0, 0, 0]);
    old.extend_from_slice(&3u32.to_le_bytes());
    old.extend_from_slice(&1u32.to_le_bytes());
    old.extend_from_slice(&[0b010, 0, 0, 0]); // bitmap
    old.extend_from_slice(&1u32.to_le_bytes()); // one dictionary
    old.extend_from_slice(&1u32.to_le_bytes());
    old.extend_from_slice(b"D\0\0\0"); // "D", padded
    old.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // 3 u16 + pad
    for o in [0u32, 0, 2, 2] {
        old.extend_from_slice(&o.to_le_bytes());
    }
    old.extend_from_slice(b"ab");
    let old = seal(old);
    let v = RecordView::parse(&old).unwrap();
    assert!(!v.is_sparse());
    assert_eq!((v.present, v.point(1), v.point_dict(1)), (1, &b"ab"[..], &b"D"[..]));
    assert!(!v.is_present(0) && !v.is_present(2));
}

#[test]
fn dense_typed_equals_the_builder_point_by_point() {
    for (kind, w) in [(8u8, 8usize), (7, 4), (3, 2), (11, 1)] {
        for n in [1usize, 7, 8, 9, 63, 64, 65, 1000] {
            let data: Vec<u8> = (0..n * w).map(|i| (i * 31 + 7) as u8).collect();
            let mut b = RecordBuilder::new(kind, n).unwrap();
            for i in 0..n {
                b.set(i, &data[i * w..(i + 1) * w]).unwrap();
            }
            assert_eq!(RecordBuilder::dense_typed(kind, n, &data).unwrap(), b.finish(), "kind {kind}, {n} points");
        }
    }
    assert!(RecordBuilder::dense_typed(KIND_ITEMS, 1, b"x").is_err());
    assert!(RecordBuilder::dense_typed(8, 2, &[0u8; 8]).is_err());
}

#[test]
fn dense_items_equals_the_builder_point_by_point() {
    for dict in [&b""[..], b"dict", b"abcdefg"] {
        for n in [1usize, 2, 3, 7, 8, 9, 64, 65, 300] {
            let mut offsets = vec![5u32];
            let mut data = vec![9u8; 5];
            for i in 0..n {
                data.extend((0..(i % 4)).map(|k| (i * 7 + k) as u8));
                offsets.push(data.len() as u32);
            }
            let mut b = RecordBuilder::new(KIND_ITEMS, n).unwrap();
            for i in 0..n {
                b.set_in(i, &data[offsets[i] as usize..offsets[i + 1] as usize], dict).unwrap();
            }
            assert_eq!(RecordBuilder::dense_items(n, &offsets, &data, dict).unwrap(), b.finish(), "{n} points");
        }
    }
    assert!(RecordBuilder::dense_items(2, &[0, 1], b"ab", b"").is_err());
    assert!(RecordBuilder::dense_items(2, &[0, 2, 1], b"ab", b"").is_err());
}

#[test]
fn verifying_while_taking_the_data_agrees_with_parse() {
    // 20,000 float64 points: 160,000 bytes of data, several stretches.
    let n = 20_000;
    let mut b = RecordBuilder::new(DType::F64 as u8, n).unwrap();
    for i in 0..n {
        b.set(i, &(i as f64 * 0.25).to_le_bytes()).unwrap();
    }
    let good = b.finish();
    let v = RecordView::parse_header(&good).unwrap();
    let mut taken = Vec::new();
    assert!(v.verify_taking_data(&good, |at, bytes| {
        assert_eq!(at, taken.len(), "stretches come in order");
        taken.extend_from_slice(bytes);
    }));
    assert_eq!(taken, v.data());
    assert!(v.verify(&good) && RecordView::parse(&good).is_ok());

    // A flipped byte deep in the data: the structure parses, the checksum
    // does not match (the data was still handed over, to be discarded).
    let mut bad = good.clone();
    let at = bad.len() - 8 - 100_000;
    bad[at] ^= 0x40;
    let v = RecordView::parse_header(&bad).unwrap();
    let mut seen = 0;
    assert!(!v.verify_taking_data(&bad, |_, bytes| seen += bytes.len()));
    assert_eq!(seen, n * 8);
    assert!(RecordView::parse(&bad).is_err());

    // Bytes other than the view's own record never verify, even equal ones.
    let copy = good.clone();
    assert!(!RecordView::parse_header(&good).unwrap().verify(&copy));
}

#[test]
fn table_checks_find_a_decrease_or_a_large_index_at_any_position() {
    use super::view::{max_u16, offsets_decrease};
    let le32 = |xs: &[u32]| xs.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let le16 = |xs: &[u16]| xs.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    // Lengths around the vector widths, a fault at every position.
    for n in 0..70usize {
        let rising: Vec<u32> = (0..n as u32).map(|k| k * 3 + (k & 1)).collect();
        assert!(!offsets_decrease(&le32(&rising)), "{n} rising offsets");
        let flat = vec![7u32; n];
        assert!(!offsets_decrease(&le32(&flat)), "{n} equal offsets");
        for k in 1..n {
            let mut bad = rising.clone();
            bad[k] = bad[k - 1] - 1 + u32::from(bad[k - 1] == 0);
            if bad[k] < bad[k - 1] {
                assert!(offsets_decrease(&le32(&bad)), "{n} offsets, a decrease at {k}");
            }
        }
        let small: Vec<u16> = (0..n as u16).map(|k| k % 3).collect();
        assert_eq!(max_u16(&le16(&small)), if n == 0 { 0 } else { small.iter().copied().max().unwrap() });
        for k in 0..n {
            let mut big = small.clone();
            big[k] = 0xfff0;
            assert_eq!(max_u16(&le16(&big)), 0xfff0, "{n} indices, a large one at {k}");
        }
    }
}
