//! Canonical digests and value hashes.

use crate::errors::boundary;
use chunk_memo_core::axis_hashes::axis_hashes;
use chunk_memo_core::canonical;
use napi::bindgen_prelude::*;
use napi_derive::napi;

// ---------------------------------------------------------------------------
// Hashing

/// BLAKE3 digest (hex, 64 chars) of one canonical encoding.
#[napi]
pub fn canonical_digest_hex(canonical_bytes: Buffer) -> String {
    canonical::hex(&canonical::digest(&canonical_bytes))
}

/// 16-byte identifier (digest prefix) of one canonical encoding.
#[napi]
pub fn canonical_id(canonical_bytes: Buffer) -> Buffer {
    canonical::id16(&canonical_bytes).to_vec().into()
}

/// Little-endian bytes of each value, one after another.
fn packed<T: Copy, const N: usize>(xs: impl Iterator<Item = T>, le: impl Fn(T) -> [u8; N]) -> Buffer {
    let mut out = Vec::with_capacity(xs.size_hint().0 * N);
    for x in xs {
        out.extend_from_slice(&le(x));
    }
    out.into()
}

/// Value hashes (u64 little-endian, 8 bytes each) of concatenated canonical
/// encodings (remembered for lists hashed before: `axis_hashes`).
#[napi]
pub fn hash_values(env: Env, concatenated: Buffer) -> Result<Buffer> {
    boundary(&env, || Ok(packed(axis_hashes(&concatenated)?.hashes.iter().copied(), u64::to_le_bytes)))
}

/// An axis' values, hashed: `hashes` (u64 LE each, as `hashValues`) and
/// `order`, their order keys (u32 LE each, `canonical::order_key`: what a
/// grid's chunk keys start with).
#[napi(object)]
pub struct BindingAxisHashes {
    pub hashes: Buffer,
    pub order: Buffer,
}

/// Value hashes and order keys of concatenated canonical encodings, in one
/// pass over them (remembered for axes hashed before: `axis_hashes`).
#[napi]
pub fn hash_axis_values(env: Env, concatenated: Buffer) -> Result<BindingAxisHashes> {
    boundary(&env, || {
        let h = axis_hashes(&concatenated)?;
        Ok(BindingAxisHashes {
            hashes: packed(h.hashes.iter().copied(), u64::to_le_bytes),
            order: packed(h.order.iter().copied(), u32::to_le_bytes),
        })
    })
}
