//! One error type for the core, carrying a stable code that the binding maps
//! to `ChunkMemoError` codes on the JS side.

use std::fmt;

/// Stable error codes. The string form is what JS sees as `error.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Bad input to a core call (wrong sizes, unknown kind...).
    InvalidArgument,
    /// A value could not be canonically encoded or decoded.
    Encoding,
    /// A record failed its checksum or is structurally invalid.
    CorruptRecord,
    /// LMDB or file system failure (includes a full disk).
    Storage,
    /// The disk (or the configured maximum map size) is full.
    StoreFull,
    /// The LMDB map is full: the store grows it and retries (JS sees
    /// `ERR_STORE_FULL` only when it cannot grow).
    MapFull,
    /// An axis lists the same value twice.
    DuplicateAxisValue,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "ERR_INVALID_ARGUMENT",
            ErrorCode::Encoding => "ERR_ENCODING",
            ErrorCode::CorruptRecord => "ERR_CORRUPT_RECORD",
            ErrorCode::Storage => "ERR_STORAGE",
            ErrorCode::StoreFull | ErrorCode::MapFull => "ERR_STORE_FULL",
            ErrorCode::DuplicateAxisValue => "ERR_DUPLICATE_AXIS_VALUE",
        }
    }
}

/// Data an error carries besides its code and message, so that callers
/// never parse the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorDetail {
    /// `axis` lists one value at indices `first` and `second`.
    DuplicateAxisValue { axis: String, first: u32, second: u32 },
}

#[derive(Debug, Clone)]
pub struct CoreError {
    pub code: ErrorCode,
    pub message: String,
    pub detail: Option<ErrorDetail>,
    /// The OS error number behind a storage error, when there is one (the
    /// store tells a full disk from other I/O errors with it).
    pub os_error: Option<i32>,
}

impl CoreError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CoreError { code, message: message.into(), detail: None, os_error: None }
    }
    pub fn with_detail(mut self, detail: ErrorDetail) -> Self {
        self.detail = Some(detail);
        self
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::CorruptRecord, message)
    }
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for CoreError {}

/// errno values that mean the disk (or the user's quota) is full.
const ENOSPC: i32 = 28;
const EFBIG: i32 = 27;
const EDQUOT: i32 = 122;
/// LMDB's answer to a short write (the file could not grow).
pub(crate) const EIO: i32 = 5;

/// The message of `ERR_STORE_FULL` errors.
pub(crate) fn store_full_message(why: impl fmt::Display) -> String {
    format!(
        "the store is full ({why}); free disk space (gc, rm) or raise CHUNK_MEMO_MAP_SIZE; \
         nothing committed before this write was lost"
    )
}

impl From<heed::Error> for CoreError {
    fn from(e: heed::Error) -> Self {
        let os = match &e {
            heed::Error::Io(io) => io.raw_os_error(),
            heed::Error::Mdb(heed::MdbError::Other(c)) => Some(*c),
            _ => None,
        };
        let code = match (&e, os) {
            (heed::Error::Mdb(heed::MdbError::MapFull), _) => Some(ErrorCode::MapFull),
            (_, Some(ENOSPC | EFBIG | EDQUOT)) => Some(ErrorCode::StoreFull),
            _ => None,
        };
        let mut out = match code {
            Some(code) => CoreError::new(code, store_full_message(&e)),
            None => CoreError::new(ErrorCode::Storage, format!("LMDB error: {e}")),
        };
        out.os_error = os;
        out
    }
}

pub type Result<T> = std::result::Result<T, CoreError>;
