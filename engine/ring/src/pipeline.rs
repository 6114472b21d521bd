//! The handler threads of one ring, and how they stop.

use std::thread::JoinHandle;

use crate::core::Core;
use crate::producer::Halted;
use crate::sync::Arc;

/// Owns the handler threads. Dropping it shuts the ring down (drain, then join).
pub(crate) struct Pipeline<E> {
    core: Arc<Core<E>>,
    threads: Vec<JoinHandle<()>>,
    stopped: bool,
}

impl<E> Pipeline<E> {
    pub(crate) fn new(core: Arc<Core<E>>) -> Self {
        Self {
            core,
            threads: Vec::new(),
            stopped: false,
        }
    }

    pub(crate) fn push(&mut self, thread: JoinHandle<()>) {
        self.threads.push(thread);
    }

    /// Tells handlers the last sequence there will ever be, wakes parked ones, and joins them all.
    /// Called when no producer can publish any more (the last handle is being consumed).
    pub(crate) fn shutdown(&mut self) -> Result<(), Halted> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        // Every claim has been published: single producer publishes before returning; the multi
        // producer's claims publish on drop and all handles are gone.
        let last = self.core.cursor.get();
        self.core.lifecycle.close(last);
        self.core.wake_all();
        let mut join_failure = None;
        for thread in self.threads.drain(..) {
            let name = thread.thread().name().unwrap_or("handler").to_owned();
            if let Err(payload) = thread.join() {
                join_failure.get_or_insert(Halted::new(
                    name,
                    crate::processor::panic_message(payload.as_ref()),
                ));
            }
        }
        match self.core.lifecycle.report().or(join_failure) {
            Some(halted) => Err(halted),
            None => Ok(()),
        }
    }
}

impl<E> Drop for Pipeline<E> {
    fn drop(&mut self) {
        if let Err(halted) = self.shutdown() {
            // The owner dropped the producer instead of calling `shutdown`, so this is the last
            // place the panic can be reported.
            tracing::error!(handler = %halted.handler(), message = %halted.message(), "ring halted by a handler panic");
        }
    }
}
