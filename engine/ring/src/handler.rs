//! The callbacks a handler thread drives.

/// Processes events on its own thread, in sequence order.
///
/// `end_of_batch` is true for the last event currently available: the place to flush a buffer,
/// send a packet or sync a file, so that the cost is shared by the whole batch.
pub trait EventHandler<E>: Send + 'static {
    /// One event. `sequence` starts at 0 and increases by one per event.
    fn on_event(&mut self, event: &E, sequence: i64, end_of_batch: bool);

    /// Called once on the handler's thread, after pinning and before the first event.
    fn on_start(&mut self) {}

    /// Called once on the handler's thread after the last event, when the ring shuts down cleanly.
    fn on_shutdown(&mut self) {}

    /// With `WaitStrategy::Blocking { timeout: Some(_) }`: the timeout elapsed with no event.
    /// `sequence` is the last one processed.
    fn on_timeout(&mut self, _sequence: i64) {}
}

impl<E, F> EventHandler<E> for F
where
    F: FnMut(&E, i64, bool) + Send + 'static,
{
    #[inline(always)]
    fn on_event(&mut self, event: &E, sequence: i64, end_of_batch: bool) {
        self(event, sequence, end_of_batch)
    }
}

/// Like [`EventHandler`] but with exclusive access to the event, so that later stages see what this
/// one wrote (a risk check annotating the order it passed, say). The builder only accepts it alone
/// in its stage.
pub trait EventHandlerMut<E>: Send + 'static {
    /// One event, mutable.
    fn on_event(&mut self, event: &mut E, sequence: i64, end_of_batch: bool);

    /// See [`EventHandler::on_start`].
    fn on_start(&mut self) {}

    /// See [`EventHandler::on_shutdown`].
    fn on_shutdown(&mut self) {}

    /// See [`EventHandler::on_timeout`].
    fn on_timeout(&mut self, _sequence: i64) {}
}

impl<E, F> EventHandlerMut<E> for F
where
    F: FnMut(&mut E, i64, bool) + Send + 'static,
{
    #[inline(always)]
    fn on_event(&mut self, event: &mut E, sequence: i64, end_of_batch: bool) {
        self(event, sequence, end_of_batch)
    }
}
