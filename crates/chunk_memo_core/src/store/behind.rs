//! Write-behind: write jobs that run on the store's writer thread, one
//! after another in the order they were queued, while the caller goes on
//! (a run computes its next chunks while the previous ones commit).
//!
//! The thread is started by the first job and ends when the store is
//! dropped (it holds no reference to the store between jobs). A job is an
//! ordinary store call ([`Store::write_chunks`], ...): its own transaction,
//! with the same map growth, error classification and crash safety as on
//! the caller's thread; LMDB's write lock orders it against the writes and
//! claims of every other thread and process.

use super::Store;
use crate::error::{CoreError, ErrorCode, Result};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// The writer thread's queue (inside [`Store`]).
#[derive(Default)]
pub(crate) struct Writer {
    queue: Mutex<Option<Sender<Job>>>,
}

impl Writer {
    fn submit(&self, job: Job) -> std::result::Result<(), Job> {
        let mut q = self.queue.lock().unwrap();
        if q.is_none() {
            let (tx, rx) = channel::<Job>();
            let started = std::thread::Builder::new().name("chunk-memo-writer".into()).spawn(move || {
                while let Ok(job) = rx.recv() {
                    job();
                }
            });
            if started.is_err() {
                return Err(job);
            }
            *q = Some(tx);
        }
        q.as_ref().unwrap().send(job).map_err(|e| e.0)
    }
}

/// The outcome of a queued job, to poll or wait for.
pub struct Pending<T> {
    slot: Arc<(Mutex<Option<Result<T>>>, Condvar)>,
}

impl<T> Pending<T> {
    /// The outcome once the job ended (taken: later calls see `None`), or
    /// `None` while it is queued or running.
    pub fn try_take(&self) -> Option<Result<T>> {
        self.slot.0.lock().unwrap().take()
    }

    /// Waits for the job to end and takes its outcome.
    pub fn wait(&self) -> Result<T> {
        let (m, cv) = &*self.slot;
        let mut g = m.lock().unwrap();
        loop {
            if let Some(r) = g.take() {
                return r;
            }
            g = cv.wait(g).unwrap();
        }
    }
}

impl Store {
    /// Queues `job` on the writer thread of this store and returns at once.
    /// Jobs run one at a time in the order queued. Where no thread can be
    /// started, the job runs here before this returns.
    pub fn behind<T: Send + 'static>(
        self: &Arc<Self>,
        job: impl FnOnce(&Store) -> Result<T> + Send + 'static,
    ) -> Pending<T> {
        let slot: Arc<(Mutex<Option<Result<T>>>, Condvar)> = Arc::new((Mutex::new(None), Condvar::new()));
        let (me, out) = (self.clone(), slot.clone());
        let run: Job = Box::new(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&me)))
                .unwrap_or_else(|_| Err(CoreError::new(ErrorCode::Storage, "a queued write panicked")));
            // The store handle goes before the outcome is published: a caller
            // that waited may drop the last other handle at once.
            drop(me);
            *out.0.lock().unwrap() = Some(r);
            out.1.notify_all();
        });
        if let Err(run) = self.writer.submit(run) {
            run();
        }
        Pending { slot }
    }
}
