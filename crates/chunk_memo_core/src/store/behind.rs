//! Write-behind: write jobs that run on the store's writer thread, one
//! after another in the order they were queued, while the caller goes on
//! (a run computes its next chunks while the previous ones commit).
//!
//! Jobs queued `first` (claims, which a run waits for) run before the
//! others still queued (writes, which nothing waits for until the end).
//! The thread is started by the first job and ends when the store is
//! dropped (it holds no reference to the store between jobs). A job is an
//! ordinary store call ([`Store::write_chunks`], ...): its own transaction,
//! with the same map growth, error classification and crash safety as on
//! the caller's thread; LMDB's write lock orders it against the writes and
//! claims of every other thread and process.

use super::Store;
use crate::error::{CoreError, ErrorCode, Result};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Queue {
    /// Jobs that go before the others (claims: a run waits for them).
    first: VecDeque<Job>,
    rest: VecDeque<Job>,
    started: bool,
    closed: bool,
}

impl Queue {
    fn next(&mut self) -> Option<Job> {
        self.first.pop_front().or_else(|| self.rest.pop_front())
    }
}

/// The writer thread's queue (inside [`Store`]).
#[derive(Default)]
pub(crate) struct Writer {
    shared: Arc<(Mutex<Queue>, Condvar)>,
}

impl Writer {
    fn submit(&self, job: Job, first: bool) -> std::result::Result<(), Job> {
        let (m, cv) = &*self.shared;
        let mut q = m.lock().unwrap();
        if !q.started {
            let shared = self.shared.clone();
            let started = std::thread::Builder::new().name("chunk-memo-writer".into()).spawn(move || {
                let (m, cv) = &*shared;
                let mut q = m.lock().unwrap();
                loop {
                    if let Some(job) = q.next() {
                        drop(q);
                        job();
                        q = m.lock().unwrap();
                    } else if q.closed {
                        return;
                    } else {
                        q = cv.wait(q).unwrap();
                    }
                }
            });
            if started.is_err() {
                return Err(job);
            }
            q.started = true;
        }
        if first {
            q.first.push_back(job);
        } else {
            q.rest.push_back(job);
        }
        cv.notify_one();
        Ok(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // The thread ends once the queue is empty (no job holds the store then).
        self.shared.0.lock().unwrap().closed = true;
        self.shared.1.notify_one();
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
    /// Jobs run one at a time in the order queued, those queued `first`
    /// before the others (a job already running ends first). Where no
    /// thread can be started, the job runs here before this returns.
    pub fn behind<T: Send + 'static>(
        self: &Arc<Self>,
        first: bool,
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
        if let Err(run) = self.writer.submit(run, first) {
            run();
        }
        Pending { slot }
    }
}
