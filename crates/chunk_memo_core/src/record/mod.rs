//! The layout of one chunk record.
//!
//! ```text
//! 0   magic  b"CMR1"
//! 4   kind   u8   0 = items (one msgpack value per point), else a DType
//! 5   0u8 x 3
//! 8   n      u32  points in the chunk (product of its bin lengths)
//! 12  present u32 points stored
//! 16  presence bitmap, ceil(n/8) bytes, zero padded to a multiple of 4
//! ..  items only: the dictionaries: u32 count, then per dictionary a u32
//!     length and its bytes, zero padded to a multiple of 4; then one u16
//!     per point naming the dictionary its bytes were packed with (padded
//!     to a multiple of 4); then n+1 u32 offsets into the data area
//! ..  data   items: concatenated msgpack; typed: n little-endian elements
//! end-8 checksum: xxh3-64 of every preceding byte, little-endian
//! ```
//!
//! Any subset of points is read through the offsets (or the fixed element
//! width) without decoding the others. Absent points have empty items or
//! zeroed elements.
//!
//! Sparse form (partial records with few points; the writer picks whichever
//! form is smaller, a complete record is always dense), so that size and
//! rewrite cost follow the points present, not the chunk size:
//!
//! ```text
//! 0   magic  b"CMR2"
//! 4   kind   u8
//! 5   flags  u8   bit 0: sparse (set)
//! 6   0u8 x 2
//! 8   n      u32
//! 12  present u32 (p)
//! 16  p u32 point indices, strictly ascending, each < n
//! ..  items only: the dictionaries as above; p u16 dictionary indices
//!     (padded to a multiple of 4); p+1 u32 offsets into the data area
//! ..  data   items: concatenated msgpack; typed: p elements, index order
//! end-8 checksum
//! ```
//!
//! Presence is a binary search in the index list; dense records written
//! before the sparse form existed read as before.
//!
//! A dictionary is opaque here: the TS layer packs the points of one write
//! with msgpack record structures and stores the structure list once per
//! record instead of repeating keys in every point; an empty dictionary
//! means plain msgpack. Points merged from several writes keep their own
//! dictionary, so merging never re-encodes.
//!
//! [`view`] parses and reads a record in either form; [`builder`] builds one
//! point by point and writes the smaller form.

mod builder;
mod view;

pub use builder::RecordBuilder;
pub use view::{DenseItems, RecordHead, RecordView};

use crate::canonical::DType;

/// Bytes hashed at a time where a record is hashed while its data is copied
/// ([`RecordView::verify_taking_data`], [`RecordBuilder::write_dense_typed`]):
/// a stretch is still in the first-level caches when it is hashed.
const STRETCH: usize = 32 << 10;
use crate::error::{CoreError, Result};

pub const MAGIC: &[u8; 4] = b"CMR1";
pub const MAGIC_SPARSE: &[u8; 4] = b"CMR2";
const FLAG_SPARSE: u8 = 1;
pub const KIND_ITEMS: u8 = 0;
const HEADER: usize = 16;

/// Element width of a record kind, `None` for items.
pub fn kind_width(kind: u8) -> Result<Option<usize>> {
    if kind == KIND_ITEMS {
        return Ok(None);
    }
    DType::from_u8(kind)
        .map(|d| Some(d.size()))
        .ok_or_else(|| CoreError::invalid(format!("unknown output kind {kind}")))
}

fn bitmap_len(n: usize) -> usize {
    n.div_ceil(8).div_ceil(4) * 4
}

#[cfg(test)]
mod tests;
