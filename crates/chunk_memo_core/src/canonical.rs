//! Canonical encoding of values (format version 1) and BLAKE3 digests.
//!
//! The byte layout is specified in `docs/canonical-encoding.md`; the TS layer
//! implements the same encoder and both are checked against the committed
//! vectors in `docs/canonical-vectors.json`.

use crate::error::{CoreError, ErrorCode, Result};

/// Domain separation prefix hashed before every canonical encoding.
pub const DOMAIN: &[u8] = b"chunk-memo/canonical/v1\0";

pub mod tag {
    pub const NULL: u8 = 0x00;
    pub const FALSE: u8 = 0x01;
    pub const TRUE: u8 = 0x02;
    pub const INT: u8 = 0x03;
    pub const FLOAT: u8 = 0x04;
    pub const BIGINT: u8 = 0x05;
    pub const STRING: u8 = 0x06;
    pub const BYTES: u8 = 0x07;
    pub const TYPED: u8 = 0x08;
    pub const DATE: u8 = 0x09;
    pub const ARRAY: u8 = 0x0a;
    pub const OBJECT: u8 = 0x0b;
}

/// Element types of typed arrays (the `dtype` byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum DType {
    I8 = 1,
    U8Clamped = 2,
    I16 = 3,
    U16 = 4,
    I32 = 5,
    U32 = 6,
    F32 = 7,
    F64 = 8,
    I64 = 9,
    U64 = 10,
    U8 = 11,
}

impl DType {
    pub fn from_u8(b: u8) -> Option<DType> {
        Some(match b {
            1 => DType::I8,
            2 => DType::U8Clamped,
            3 => DType::I16,
            4 => DType::U16,
            5 => DType::I32,
            6 => DType::U32,
            7 => DType::F32,
            8 => DType::F64,
            9 => DType::I64,
            10 => DType::U64,
            11 => DType::U8,
            _ => return None,
        })
    }
    pub fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 | DType::U8Clamped => 1,
            DType::I16 | DType::U16 => 2,
            DType::I32 | DType::U32 | DType::F32 => 4,
            DType::F64 | DType::I64 | DType::U64 => 8,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::U8Clamped => "u8c",
            DType::I16 => "i16",
            DType::U16 => "u16",
            DType::I32 => "i32",
            DType::U32 => "u32",
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I64 => "i64",
            DType::U64 => "u64",
        }
    }
    pub fn from_name(s: &str) -> Option<DType> {
        [
            DType::I8,
            DType::U8,
            DType::U8Clamped,
            DType::I16,
            DType::U16,
            DType::I32,
            DType::U32,
            DType::F32,
            DType::F64,
            DType::I64,
            DType::U64,
        ]
        .into_iter()
        .find(|d| d.name() == s)
    }
}

/// A value in the canonical model. JS numbers map to `Int` when they are
/// integers of magnitude at most 2^53-1, else to `Float`; bigints in the i64
/// range map to `Int`, larger ones to `BigInt`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Sign and little-endian magnitude (no trailing zero bytes).
    BigInt {
        negative: bool,
        magnitude: Vec<u8>,
    },
    Str(String),
    Bytes(Vec<u8>),
    /// Element type and little-endian element bytes.
    Typed {
        dtype: DType,
        data: Vec<u8>,
    },
    /// Milliseconds since the Unix epoch.
    Date(f64),
    Array(Vec<Value>),
    /// Keys in any order; the encoder sorts them.
    Object(Vec<(String, Value)>),
}

fn put_len(out: &mut Vec<u8>, n: usize) -> Result<()> {
    let n = u32::try_from(n).map_err(|_| CoreError::new(ErrorCode::Encoding, "length exceeds 2^32-1"))?;
    out.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

/// Appends the canonical encoding of `v` to `out`.
pub fn encode_into(v: &Value, out: &mut Vec<u8>) -> Result<()> {
    match v {
        Value::Null => out.push(tag::NULL),
        Value::Bool(false) => out.push(tag::FALSE),
        Value::Bool(true) => out.push(tag::TRUE),
        Value::Int(i) => {
            out.push(tag::INT);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Float(f) => {
            if f.is_nan() {
                return Err(CoreError::new(ErrorCode::Encoding, "NaN cannot be hashed"));
            }
            // Integral floats in the safe range are ints by the JS number rule.
            if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_991.0 {
                return encode_into(&Value::Int(*f as i64), out);
            }
            out.push(tag::FLOAT);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::BigInt { negative, magnitude } => {
            let mut mag = magnitude.clone();
            while mag.last() == Some(&0) {
                mag.pop();
            }
            if mag.len() <= 8 {
                let mut b = [0u8; 8];
                b[..mag.len()].copy_from_slice(&mag);
                let u = u64::from_le_bytes(b);
                let fits = if *negative { u <= 1u64 << 63 } else { u < 1u64 << 63 };
                if fits {
                    let i = if *negative { (u as i128).wrapping_neg() as i64 } else { u as i64 };
                    return encode_into(&Value::Int(i), out);
                }
            }
            out.push(tag::BIGINT);
            out.push(u8::from(*negative));
            put_len(out, mag.len())?;
            out.extend_from_slice(&mag);
        }
        Value::Str(s) => {
            out.push(tag::STRING);
            put_len(out, s.len())?;
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(tag::BYTES);
            put_len(out, b.len())?;
            out.extend_from_slice(b);
        }
        Value::Typed { dtype, data } => {
            if data.len() % dtype.size() != 0 {
                return Err(CoreError::new(
                    ErrorCode::Encoding,
                    "typed array byte length is not a multiple of its element size",
                ));
            }
            out.push(tag::TYPED);
            out.push(*dtype as u8);
            put_len(out, data.len() / dtype.size())?;
            out.extend_from_slice(data);
        }
        Value::Date(ms) => {
            if !ms.is_finite() {
                return Err(CoreError::new(ErrorCode::Encoding, "invalid Date cannot be hashed"));
            }
            out.push(tag::DATE);
            out.extend_from_slice(&ms.to_le_bytes());
        }
        Value::Array(items) => {
            out.push(tag::ARRAY);
            put_len(out, items.len())?;
            for it in items {
                encode_into(it, out)?;
            }
        }
        Value::Object(entries) => {
            let mut sorted: Vec<&(String, Value)> = entries.iter().collect();
            sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            for w in sorted.windows(2) {
                if w[0].0 == w[1].0 {
                    return Err(CoreError::new(ErrorCode::Encoding, format!("duplicate key {:?}", w[0].0)));
                }
            }
            out.push(tag::OBJECT);
            put_len(out, sorted.len())?;
            for (k, v) in sorted {
                put_len(out, k.len())?;
                out.extend_from_slice(k.as_bytes());
                encode_into(v, out)?;
            }
        }
    }
    Ok(())
}

/// The canonical encoding of `v`.
pub fn encode(v: &Value) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(v, &mut out)?;
    Ok(out)
}

/// BLAKE3 digest (32 bytes) of already canonical bytes, domain separated.
pub fn digest(canonical: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(DOMAIN);
    h.update(canonical);
    *h.finalize().as_bytes()
}

/// Cache / record identifiers: the first 16 bytes of the digest.
pub fn id16(canonical: &[u8]) -> [u8; 16] {
    let d = digest(canonical);
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// Axis value identity: the first 8 bytes of the digest, little-endian.
pub fn value_hash(canonical: &[u8]) -> u64 {
    let d = digest(canonical);
    u64::from_le_bytes(d[..8].try_into().unwrap())
}

/// Order key of one value (docs/canonical-encoding.md §3.1): a `u32` that
/// follows the order of numbers (INT, FLOAT and DATE alike); for a string
/// with digits, the number its last run of digits spells (within a family of
/// strings that differ only there: `sample_000123`, `sample_000124`, ...);
/// for other strings and byte strings their first bytes; 0 for every other
/// type. Values that come close together get close keys; the key only
/// places records near each other in the store (chunk keys start with it)
/// and identifies nothing.
pub fn order_key(canonical: &[u8]) -> u32 {
    let f64_at = |b: &[u8]| b.get(1..9).map(|x| f64::from_le_bytes(x.try_into().unwrap()));
    let body = canonical.get(5..).unwrap_or(&[]);
    let number = match canonical.first() {
        Some(&tag::INT) => canonical.get(1..9).map(|x| i64::from_le_bytes(x.try_into().unwrap()) as f64),
        Some(&tag::FLOAT) | Some(&tag::DATE) => f64_at(canonical),
        Some(&tag::STRING) => return numbered_key(body).unwrap_or_else(|| head_key(body)),
        Some(&tag::BYTES) => return head_key(body),
        _ => None,
    };
    match number {
        // IEEE 754 bits made to sort as unsigned integers: negatives
        // flipped whole, positives with the sign bit set.
        Some(x) => {
            let bits = x.to_bits();
            let sortable = if bits >> 63 == 1 { !bits } else { bits | 1 << 63 };
            (sortable >> 32) as u32
        }
        None => 0,
    }
}

/// The first 4 bytes, big-endian, zero padded.
fn head_key(body: &[u8]) -> u32 {
    let mut head = [0u8; 4];
    let n = body.len().min(4);
    head[..n].copy_from_slice(&body[..n]);
    u32::from_be_bytes(head)
}

/// A string with ASCII digits: its last run of digits' value modulo 2^16,
/// then the top 16 bits of FNV-1a (32-bit) of its bytes outside that run.
/// The number comes first, so that the top half of the key (all a second
/// axis contributes to a chunk key) follows it too.
fn numbered_key(body: &[u8]) -> Option<u32> {
    let end = body.iter().rposition(u8::is_ascii_digit)? + 1;
    let start = body[..end].iter().rposition(|b| !b.is_ascii_digit()).map_or(0, |i| i + 1);
    let mut fnv: u32 = 0x811c_9dc5;
    for &b in body[..start].iter().chain(&body[end..]) {
        fnv = (fnv ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    let run = body[start..end].iter().fold(0u32, |v, &d| (v * 10 + u32::from(d - b'0')) & 0xffff);
    Some(run << 16 | fnv >> 16)
}

/// [`order_key`] of each of a buffer of concatenated canonical encodings.
pub fn order_keys_concatenated(buf: &[u8]) -> Result<Vec<u32>> {
    Ok(split_concatenated(buf)?.into_iter().map(order_key).collect())
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}

/// Splits a buffer of concatenated canonical encodings into its items,
/// checking each is well formed.
pub fn split_concatenated(buf: &[u8]) -> Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let end = skip(buf, pos)?;
        out.push(&buf[pos..end]);
        pos = end;
    }
    Ok(out)
}

/// The value hash and the order key of each of `items` (canonical
/// encodings). Large lists are split across threads: a million values
/// cost a million digests.
pub fn hashes_and_order_keys(items: &[&[u8]]) -> (Vec<u64>, Vec<u32>) {
    const PER_THREAD: usize = 1 << 16;
    let one = |part: &[&[u8]]| -> (Vec<u64>, Vec<u32>) {
        (part.iter().map(|e| value_hash(e)).collect(), part.iter().map(|e| order_key(e)).collect())
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(items.len() / PER_THREAD).min(8);
    if threads <= 1 {
        return one(items);
    }
    let size = items.len().div_ceil(threads);
    let parts: Vec<(Vec<u64>, Vec<u32>)> = std::thread::scope(|sc| {
        let handles: Vec<_> = items.chunks(size).map(|part| sc.spawn(move || one(part))).collect();
        handles.into_iter().map(|h| h.join().expect("hashing thread")).collect()
    });
    let (mut hashes, mut keys) = (Vec::with_capacity(items.len()), Vec::with_capacity(items.len()));
    for (h, k) in parts {
        hashes.extend(h);
        keys.extend(k);
    }
    (hashes, keys)
}

/// The value hash of each of a buffer of concatenated canonical encodings.
pub fn hash_concatenated(buf: &[u8]) -> Result<Vec<u64>> {
    Ok(split_concatenated(buf)?.into_iter().map(value_hash).collect())
}

fn take_u32(buf: &[u8], pos: usize) -> Result<usize> {
    buf.get(pos..pos + 4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize)
        .ok_or_else(|| CoreError::new(ErrorCode::Encoding, "truncated canonical encoding"))
}

fn need(buf: &[u8], end: usize) -> Result<usize> {
    if end <= buf.len() {
        Ok(end)
    } else {
        Err(CoreError::new(ErrorCode::Encoding, "truncated canonical encoding"))
    }
}

/// Returns the end offset of the encoded value starting at `pos`.
pub fn skip(buf: &[u8], pos: usize) -> Result<usize> {
    let t = *buf.get(pos).ok_or_else(|| CoreError::new(ErrorCode::Encoding, "truncated canonical encoding"))?;
    let p = pos + 1;
    match t {
        tag::NULL | tag::FALSE | tag::TRUE => Ok(p),
        tag::INT | tag::FLOAT | tag::DATE => need(buf, p + 8),
        tag::BIGINT => {
            let n = take_u32(buf, p + 1)?;
            need(buf, p + 5 + n)
        }
        tag::STRING | tag::BYTES => {
            let n = take_u32(buf, p)?;
            need(buf, p + 4 + n)
        }
        tag::TYPED => {
            let d = DType::from_u8(*buf.get(p).unwrap_or(&0))
                .ok_or_else(|| CoreError::new(ErrorCode::Encoding, "unknown dtype"))?;
            let n = take_u32(buf, p + 1)?;
            need(buf, p + 5 + n * d.size())
        }
        tag::ARRAY => {
            let n = take_u32(buf, p)?;
            let mut q = p + 4;
            for _ in 0..n {
                q = skip(buf, q)?;
            }
            Ok(q)
        }
        tag::OBJECT => {
            let n = take_u32(buf, p)?;
            let mut q = p + 4;
            for _ in 0..n {
                let k = take_u32(buf, q)?;
                q = need(buf, q + 4 + k)?;
                q = skip(buf, q)?;
            }
            Ok(q)
        }
        other => Err(CoreError::new(ErrorCode::Encoding, format!("unknown tag 0x{other:02x}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_keys_follow_numbers_and_string_heads() {
        let key = |v: Value| order_key(&encode(&v).unwrap());
        let sorted = [-1e300, -2.5, -1.0, -0.5, 0.0, 0.25, 1.0, 2.0, 3.0, 1000.0, 1e6, 1e300, f64::INFINITY];
        let keys: Vec<u32> = sorted.iter().map(|&x| key(Value::Float(x))).collect();
        assert!(keys.windows(2).all(|w| w[0] <= w[1]), "{keys:?}");
        // Small integers are told apart (up to 2^20), and ints order like floats.
        let ints: Vec<u32> = (0..(1 << 20)).step_by(997).map(|i| key(Value::Int(i))).collect();
        assert!(ints.windows(2).all(|w| w[0] < w[1]));
        assert!(key(Value::Int(2)) < key(Value::Float(2.5)) && key(Value::Float(2.5)) < key(Value::Int(3)));
        assert!(key(Value::Str("apple".into())) < key(Value::Str("banana".into())));
        assert_eq!(key(Value::Str("ab".into())), u32::from_be_bytes(*b"ab\0\0"));
        // Numbered strings: one family shares the top half, the number follows.
        let s = |x: &str| key(Value::Str(x.into()));
        assert_eq!(s("sample_000124"), s("sample_000123") + (1 << 16));
        assert_eq!(s("img_0042.png") & 0xffff, s("img_0007.png") & 0xffff);
        assert_eq!(s("img_0042.png") >> 16, 42);
        assert_eq!(s("run7") >> 16, 7);
        assert_ne!(s("sample_1") & 0xffff, s("other_1") & 0xffff);
        assert_eq!(s("x65537") >> 16, 1, "the run's value modulo 2^16");
        assert_eq!(key(Value::Array(vec![Value::Int(5)])), 0);
        assert_eq!(key(Value::Null), 0);
        let mut buf = encode(&Value::Int(7)).unwrap();
        buf.extend(encode(&Value::Str("z".into())).unwrap());
        assert_eq!(order_keys_concatenated(&buf).unwrap(), vec![key(Value::Int(7)), key(Value::Str("z".into()))]);
    }

    #[test]
    fn integral_floats_are_ints() {
        assert_eq!(encode(&Value::Float(3.0)).unwrap(), encode(&Value::Int(3)).unwrap());
        assert_eq!(encode(&Value::Float(-0.0)).unwrap(), encode(&Value::Int(0)).unwrap());
        assert_ne!(encode(&Value::Float(3.5)).unwrap(), encode(&Value::Int(3)).unwrap());
    }

    #[test]
    fn small_bigints_are_ints() {
        let v = Value::BigInt { negative: true, magnitude: vec![5] };
        assert_eq!(encode(&v).unwrap(), encode(&Value::Int(-5)).unwrap());
        let min = Value::BigInt { negative: true, magnitude: (1u64 << 63).to_le_bytes().to_vec() };
        assert_eq!(encode(&min).unwrap(), encode(&Value::Int(i64::MIN)).unwrap());
        let big = Value::BigInt { negative: false, magnitude: (1u64 << 63).to_le_bytes().to_vec() };
        assert_eq!(encode(&big).unwrap()[0], tag::BIGINT);
    }

    #[test]
    fn object_keys_sorted_and_nan_refused() {
        let a = Value::Object(vec![("b".into(), Value::Int(1)), ("a".into(), Value::Int(2))]);
        let b = Value::Object(vec![("a".into(), Value::Int(2)), ("b".into(), Value::Int(1))]);
        assert_eq!(encode(&a).unwrap(), encode(&b).unwrap());
        assert!(encode(&Value::Float(f64::NAN)).is_err());
    }

    #[test]
    fn skip_and_hash_concatenated() {
        let vals = [Value::Int(1), Value::Str("x".into()), Value::Array(vec![Value::Null, Value::Bool(true)])];
        let mut buf = Vec::new();
        for v in &vals {
            encode_into(v, &mut buf).unwrap();
        }
        let hs = hash_concatenated(&buf).unwrap();
        assert_eq!(hs.len(), 3);
        assert_eq!(hs[1], value_hash(&encode(&vals[1]).unwrap()));
        assert!(hash_concatenated(&buf[..buf.len() - 1]).is_err());
    }
}
