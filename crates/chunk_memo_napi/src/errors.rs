//! The error boundary of the binding: core errors cross N-API as data.
//!
//! Inside the binding every fallible step returns a [`CoreResult`]; each
//! exported function converts at its edge with [`boundary`], which makes a real JS
//! `Error` whose `code` is the stable code (`ERR_...`), whose `message` is
//! the core message (no code prefix) and which carries the error's data as
//! fields (`ERR_DUPLICATE_AXIS_VALUE`: `axis`, `first`, `second`). Async
//! tasks keep the core error and convert it in `reject`, on the JS thread.

use chunk_memo_core::{CoreError, ErrorDetail};
use napi::bindgen_prelude::*;

pub(crate) type CoreResult<T> = chunk_memo_core::error::Result<T>;

/// A JS `Error` for a core error (see the module docs).
pub(crate) fn js_error(env: &Env, e: CoreError) -> Error {
    let err = JsError::from(Error::new(e.code.as_str(), e.message.clone())).into_unknown(*env);
    if let Some(detail) = &e.detail {
        if set_detail(err, detail).is_err() {
            return fallback(e);
        }
    }
    Error::from(err)
}

fn set_detail(err: Unknown<'_>, detail: &ErrorDetail) -> Result<()> {
    let mut obj = err.coerce_to_object()?;
    match detail {
        ErrorDetail::DuplicateAxisValue { axis, first, second } => {
            obj.set_named_property("axis", axis.as_str())?;
            obj.set_named_property("first", *first)?;
            obj.set_named_property("second", *second)?;
        }
    }
    Ok(())
}

/// Without a usable env: the code goes in the message, as before.
fn fallback(e: CoreError) -> Error {
    Error::new(Status::GenericFailure, format!("{}: {}", e.code.as_str(), e.message))
}

/// Runs the body of an exported function, whose errors are core errors,
/// and converts them at its edge.
pub(crate) fn boundary<T>(env: &Env, body: impl FnOnce() -> CoreResult<T>) -> Result<T> {
    body().map_err(|e| js_error(env, e))
}

/// An `ERR_INVALID_ARGUMENT` core error.
pub(crate) fn invalid(msg: impl Into<String>) -> CoreError {
    CoreError::invalid(msg)
}
