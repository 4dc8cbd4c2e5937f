//! Canonical digests and value hashes.

use crate::errors::boundary;
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

/// Value hashes (u64 little-endian, 8 bytes each) of concatenated canonical
/// encodings.
#[napi]
pub fn hash_values(env: Env, concatenated: Buffer) -> Result<Buffer> {
    boundary(&env, || {
        let hs = canonical::hash_concatenated(&concatenated)?;
        let mut out = Vec::with_capacity(hs.len() * 8);
        for h in hs {
            out.extend_from_slice(&h.to_le_bytes());
        }
        Ok(out.into())
    })
}

/// Order keys (u32 little-endian, 4 bytes each) of concatenated canonical
/// encodings (`canonical::order_key`): what a grid's chunk keys start with.
#[napi]
pub fn order_keys(env: Env, concatenated: Buffer) -> Result<Buffer> {
    boundary(&env, || {
        let ks = canonical::order_keys_concatenated(&concatenated)?;
        let mut out = Vec::with_capacity(ks.len() * 4);
        for k in ks {
            out.extend_from_slice(&k.to_le_bytes());
        }
        Ok(out.into())
    })
}
