//! Pure core of chunk-memo.
//!
//! * [`canonical`]: the canonical byte encoding of values and its BLAKE3 digests
//!   (specified in `docs/canonical-encoding.md`).
//! * [`checksum`]: the XXH3-64 checksum of records and index entries.
//! * [`axis_hashes`]: value hashes of whole axes, remembered for the process.
//! * [`planner`]: bins, memo chunks, grid order and selections.
//! * [`record`]: the on-disk layout of one chunk record (presence map,
//!   per-point offsets, checksum).
//! * [`store`]: the LMDB environment registry and chunk store.
//! * [`claims`], [`owner`]: work claims shared by the processes of a root
//!   and the OS-lock liveness of their owners.
//! * [`memory`]: prefaulting large outputs.
//!
//! Nothing here knows about N-API; the binding crate is a thin layer on top.

pub mod axis_hashes;
pub mod canonical;
pub mod checksum;
pub mod claims;
pub mod error;
mod hash_index;
pub mod import;
pub mod memory;
pub mod owner;
pub mod planner;
pub mod record;
pub mod store;

pub use error::{CoreError, ErrorCode, ErrorDetail};
