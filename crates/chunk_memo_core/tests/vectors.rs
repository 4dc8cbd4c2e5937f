//! Checks the Rust encoder against the committed canonical test vectors
//! (`docs/canonical-vectors.json`), which the TS encoder also passes
//! (`native-tests/canonical.test.ts`).
//!
//! To print the encodings of the vectors (when adding one), run
//! `cargo test -p chunk_memo_core --release --test vectors -- --ignored --nocapture print_vectors`.

use chunk_memo_core::canonical::{self, encode, hex, DType, Value, DOMAIN};
use serde_json::Value as Json;

fn vectors() -> Vec<Json> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/canonical-vectors.json");
    let text = std::fs::read_to_string(path).expect("read docs/canonical-vectors.json");
    match serde_json::from_str(&text).expect("parse canonical-vectors.json") {
        Json::Array(v) => v,
        _ => panic!("the vectors file must hold an array"),
    }
}

/// Little-endian magnitude of a decimal string (no sign).
fn decimal_magnitude(digits: &str) -> Vec<u8> {
    let mut mag: Vec<u8> = Vec::new();
    for c in digits.bytes() {
        assert!(c.is_ascii_digit(), "bad decimal {digits:?}");
        let mut carry = u32::from(c - b'0');
        for b in mag.iter_mut() {
            let x = u32::from(*b) * 10 + carry;
            *b = (x & 0xff) as u8;
            carry = x >> 8;
        }
        while carry > 0 {
            mag.push((carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    mag
}

fn parse_hex(s: &str) -> Vec<u8> {
    assert_eq!(s.len() % 2, 0, "odd hex length");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn float_of(j: &Json) -> f64 {
    match j {
        Json::Number(n) => n.as_f64().expect("number"),
        Json::String(s) => match s.as_str() {
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            other => other.parse().unwrap_or_else(|_| panic!("bad float {other:?}")),
        },
        other => panic!("bad float {other}"),
    }
}

fn int_text(j: &Json) -> String {
    match j {
        Json::Number(n) => n.to_string(),
        Json::String(s) => s.clone(),
        other => panic!("bad integer {other}"),
    }
}

fn typed_bytes(dtype: DType, values: &[Json]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * dtype.size());
    for v in values {
        let t = int_text(v);
        match dtype {
            DType::I8 => out.extend_from_slice(&t.parse::<i8>().unwrap().to_le_bytes()),
            DType::U8 | DType::U8Clamped => out.push(t.parse::<u8>().unwrap()),
            DType::I16 => out.extend_from_slice(&t.parse::<i16>().unwrap().to_le_bytes()),
            DType::U16 => out.extend_from_slice(&t.parse::<u16>().unwrap().to_le_bytes()),
            DType::I32 => out.extend_from_slice(&t.parse::<i32>().unwrap().to_le_bytes()),
            DType::U32 => out.extend_from_slice(&t.parse::<u32>().unwrap().to_le_bytes()),
            DType::I64 => out.extend_from_slice(&t.parse::<i64>().unwrap().to_le_bytes()),
            DType::U64 => out.extend_from_slice(&t.parse::<u64>().unwrap().to_le_bytes()),
            // f64 -> f32 rounds to nearest, ties to even, like Float32Array.
            DType::F32 => out.extend_from_slice(&(float_of(v) as f32).to_le_bytes()),
            DType::F64 => out.extend_from_slice(&float_of(v).to_le_bytes()),
        }
    }
    out
}

/// Builds a `Value` from the tagged JSON form. `reverse_keys` lists object
/// entries in reverse order (the encoder must sort them either way).
fn value_of(j: &Json, reverse_keys: bool) -> Value {
    let obj = j.as_object().unwrap_or_else(|| panic!("tagged value must be an object: {j}"));
    assert_eq!(obj.len(), 1, "tagged value must have one tag: {j}");
    let (tag, body) = obj.iter().next().unwrap();
    match tag.as_str() {
        "null" => Value::Null,
        "bool" => Value::Bool(body.as_bool().expect("bool")),
        "int" => Value::Int(int_text(body).parse::<i64>().expect("int in i64 range")),
        "float" => Value::Float(float_of(body)),
        "bigint" => {
            let s = int_text(body);
            let (negative, digits) = match s.strip_prefix('-') {
                Some(d) => (true, d.to_string()),
                None => (false, s),
            };
            Value::BigInt { negative, magnitude: decimal_magnitude(&digits) }
        }
        "str" => Value::Str(body.as_str().expect("str").to_string()),
        "bytes" => Value::Bytes(parse_hex(body.as_str().expect("bytes hex"))),
        "typed" => {
            let dtype = DType::from_name(body["dtype"].as_str().expect("dtype")).expect("known dtype");
            let values = body["values"].as_array().expect("values");
            Value::Typed { dtype, data: typed_bytes(dtype, values) }
        }
        "date" => Value::Date(float_of(body)),
        "array" => Value::Array(body.as_array().expect("array").iter().map(|x| value_of(x, reverse_keys)).collect()),
        "object" => {
            let mut entries: Vec<(String, Value)> =
                body.as_object().expect("object").iter().map(|(k, v)| (k.clone(), value_of(v, reverse_keys))).collect();
            if reverse_keys {
                entries.reverse();
            }
            Value::Object(entries)
        }
        other => panic!("unknown tag {other:?}"),
    }
}

fn digest_hex(enc: &[u8]) -> String {
    hex(&canonical::digest(enc))
}

#[test]
fn encodings_and_digests_match_the_vectors() {
    let vs = vectors();
    assert!(vs.len() >= 30, "expected at least 30 vectors, found {}", vs.len());
    let mut names = std::collections::HashSet::new();
    for v in &vs {
        let name = v["name"].as_str().expect("name");
        assert!(names.insert(name.to_string()), "duplicate vector name {name:?}");
        let want_hex = v["hex"].as_str().expect("hex");
        let want_digest = v["digest"].as_str().expect("digest");
        assert_eq!(want_digest.len(), 64, "{name}: digest must be 64 hex chars");
        for reverse in [false, true] {
            let value = value_of(&v["value"], reverse);
            let enc = encode(&value).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(hex(&enc), want_hex, "{name}: encoding (reversed keys: {reverse})");
            assert_eq!(digest_hex(&enc), want_digest, "{name}: digest");
        }
    }
}

#[test]
fn digest_is_blake3_of_domain_and_encoding() {
    assert_eq!(DOMAIN, b"chunk-memo/canonical/v1\0");
    // The published BLAKE3 hash of the empty input.
    assert_eq!(hex(blake3::hash(b"").as_bytes()), "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
    for v in vectors() {
        let enc = parse_hex(v["hex"].as_str().unwrap());
        let mut buf = DOMAIN.to_vec();
        buf.extend_from_slice(&enc);
        let d = *blake3::hash(&buf).as_bytes();
        assert_eq!(hex(&d), v["digest"].as_str().unwrap());
        // Identifiers are prefixes of the digest.
        assert_eq!(canonical::id16(&enc), d[..16]);
        assert_eq!(canonical::value_hash(&enc), u64::from_le_bytes(d[..8].try_into().unwrap()));
        assert_eq!(hex(&canonical::id16(&enc)).len(), 32);
    }
}

#[test]
fn vector_encodings_are_well_formed_and_hash_concatenated() {
    let vs = vectors();
    let mut buf = Vec::new();
    let mut ends = Vec::new();
    for v in &vs {
        let enc = parse_hex(v["hex"].as_str().unwrap());
        assert_eq!(canonical::skip(&enc, 0).unwrap(), enc.len(), "{}: skip", v["name"]);
        buf.extend_from_slice(&enc);
        ends.push(buf.len());
    }
    let hashes = canonical::hash_concatenated(&buf).unwrap();
    assert_eq!(hashes.len(), vs.len());
    for (v, h) in vs.iter().zip(&hashes) {
        let d = parse_hex(v["digest"].as_str().unwrap());
        assert_eq!(*h, u64::from_le_bytes(d[..8].try_into().unwrap()), "{}", v["name"]);
    }
    // Every proper prefix of the concatenation that cuts a value is refused.
    let last_start = ends[ends.len() - 2];
    for cut in last_start + 1..buf.len() {
        assert!(canonical::hash_concatenated(&buf[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn hand_checked_encodings() {
    // A few vectors spelled out byte by byte.
    let e = |v: Value| hex(&encode(&v).unwrap());
    assert_eq!(e(Value::Null), "00");
    assert_eq!(e(Value::Bool(true)), "02");
    assert_eq!(e(Value::Int(-5)), "03fbffffffffffffff");
    assert_eq!(e(Value::Float(1.5)), "04000000000000f83f");
    assert_eq!(e(Value::Float(-0.0)), "030000000000000000");
    assert_eq!(e(Value::Float(9_007_199_254_740_992.0)), "040000000000004043");
    assert_eq!(e(Value::Str("hé".into())), "060300000068c3a9");
    assert_eq!(
        e(Value::BigInt { negative: false, magnitude: (1u64 << 63).to_le_bytes().to_vec() }),
        "0500080000000000000000000080"
    );
    assert_eq!(
        e(Value::Object(vec![("b".into(), Value::Null), ("a".into(), Value::Bool(false))])),
        "0b02000000010000006101010000006200"
    );
    assert_eq!(e(Value::Typed { dtype: DType::U16, data: vec![1, 0, 0xff, 0xff] }), "0804020000000100ffff");
    // Lengths are element counts for typed arrays, byte counts for bytes.
    assert_eq!(e(Value::Bytes(vec![1, 0, 0xff, 0xff])), "07040000000100ffff");
}

#[test]
fn refused_values() {
    assert!(encode(&Value::Float(f64::NAN)).is_err());
    assert!(encode(&Value::Date(f64::NAN)).is_err());
    assert!(encode(&Value::Date(f64::INFINITY)).is_err());
    assert!(encode(&Value::Array(vec![Value::Int(1), Value::Float(f64::NAN)])).is_err());
    let dup = Value::Object(vec![("a".into(), Value::Null), ("a".into(), Value::Null)]);
    assert!(encode(&dup).is_err());
    assert!(encode(&Value::Typed { dtype: DType::F32, data: vec![0; 6] }).is_err());
}

#[test]
fn bigint_magnitudes_are_trimmed() {
    // Trailing zero bytes of the magnitude do not change the encoding.
    let a = Value::BigInt { negative: false, magnitude: decimal_magnitude("123456789012345678901234567890") };
    let mut m = decimal_magnitude("123456789012345678901234567890");
    m.extend_from_slice(&[0, 0, 0]);
    let b = Value::BigInt { negative: false, magnitude: m };
    assert_eq!(encode(&a).unwrap(), encode(&b).unwrap());
    // Zero in any spelling is INT 0.
    let z = Value::BigInt { negative: true, magnitude: vec![0, 0] };
    assert_eq!(encode(&z).unwrap(), encode(&Value::Int(0)).unwrap());
}

/// Every vector encodes; with `PRINT_VECTORS=1` (and `--nocapture`) prints
/// name, encoding and digest of each, for maintaining the vectors file.
#[test]
fn print_vectors() {
    let print = std::env::var_os("PRINT_VECTORS").is_some();
    for v in vectors() {
        let value = value_of(&v["value"], false);
        let enc = encode(&value).unwrap();
        if print {
            println!("VECTOR\t{}\t{}\t{}", v["name"].as_str().unwrap(), hex(&enc), digest_hex(&enc));
        }
    }
}
