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
}

impl CoreError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CoreError { code, message: message.into(), detail: None }
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

impl From<heed::Error> for CoreError {
    fn from(e: heed::Error) -> Self {
        let code = match &e {
            heed::Error::Mdb(heed::MdbError::MapFull) => Some(ErrorCode::MapFull),
            heed::Error::Io(io) if io.raw_os_error() == Some(28) => Some(ErrorCode::StoreFull), // ENOSPC
            heed::Error::Mdb(heed::MdbError::Other(28)) => Some(ErrorCode::StoreFull),
            _ => None,
        };
        if let Some(code) = code {
            CoreError::new(
                code,
                format!("the store is full ({e}); free disk space or raise CHUNK_MEMO_MAP_SIZE; nothing committed before this write was lost"),
            )
        } else {
            CoreError::new(ErrorCode::Storage, format!("LMDB error: {e}"))
        }
    }
}

pub type Result<T> = std::result::Result<T, CoreError>;
