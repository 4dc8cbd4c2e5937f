//! Thin N-API binding of `chunk_memo_core`. It converts arguments, turns
//! core errors into JS errors that carry their stable code as `code` (see
//! [`errors`]). Calls are synchronous except `store.importSpool` (a whole
//! archive in one transaction, an AsyncTask on the libuv pool) and the
//! writes and claims queued on the store's writer thread ([`behind`]). Data
//! crosses once per chunk or per batch as Buffers, never per point.

use errors::{invalid, CoreResult};

pub mod behind;
pub mod claims;
pub mod errors;
pub mod grid;
pub mod hashing;
pub mod import;
pub mod memory;
pub mod meta;
pub mod plan;
pub mod store;
pub mod task;
#[cfg(feature = "test-hooks")]
mod test_hooks;

pub use grid::BindingGrid;
pub use plan::BindingPlan;
pub use store::BindingStore;
pub use task::OpTask;

pub(crate) fn id16(b: &[u8], what: &str) -> CoreResult<[u8; 16]> {
    b.try_into().map_err(|_| invalid(format!("{what} must be 16 bytes")))
}
