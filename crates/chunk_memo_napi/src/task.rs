#![allow(clippy::type_complexity)] // AsyncTask<OpTask<core output, JS value>> signatures

//! Core operations as AsyncTasks on the libuv pool (`store.importSpool`).

use crate::errors::{js_error, CoreResult};
use chunk_memo_core::CoreError;
use napi::bindgen_prelude::*;

/// JS thread; a core error is kept and becomes a JS error in `reject`.
pub struct OpTask<R: Send + 'static, J> {
    op: Option<Box<dyn FnOnce() -> CoreResult<R> + Send>>,
    to_js: fn(R) -> Result<J>,
    failed: Option<CoreError>,
}

impl<R: Send + 'static, J: ToNapiValue + TypeName> Task for OpTask<R, J> {
    type Output = R;
    type JsValue = J;
    fn compute(&mut self) -> Result<R> {
        (self.op.take().expect("task runs once"))().map_err(|e| {
            let placeholder = Error::new(Status::GenericFailure, e.message.clone());
            self.failed = Some(e);
            placeholder
        })
    }
    fn resolve(&mut self, _env: Env, output: R) -> Result<J> {
        (self.to_js)(output)
    }
    fn reject(&mut self, env: Env, err: Error) -> Result<J> {
        Err(match self.failed.take() {
            Some(e) => js_error(&env, e),
            None => err,
        })
    }
}

pub(crate) fn task<R: Send + 'static, J: ToNapiValue + TypeName>(
    op: impl FnOnce() -> CoreResult<R> + Send + 'static,
    to_js: fn(R) -> Result<J>,
    signal: Option<AbortSignal>,
) -> AsyncTask<OpTask<R, J>> {
    AsyncTask::with_optional_signal(OpTask { op: Some(Box::new(op)), to_js, failed: None }, signal)
}
