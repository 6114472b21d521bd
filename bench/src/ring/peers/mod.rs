//! The peers: the `disruptor` crate (a ring with its own threads, see [`disruptor`]) and four
//! queues that the harness wires into the same topologies (see [`queues`]).
//!
//! Queues are driven only through non-blocking calls (`try_push`/`try_pop` and friends) in
//! the harness's own waiting loops, so that every peer waits the same way: busy-spin with
//! the spin-loop hint when each thread has a core, spin-then-yield when oversubscribed.
//! Blocking `recv` would measure the channel's parking instead of its queue.

pub(crate) mod disruptor;
pub(crate) mod queues;

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use super::Impl;
use super::event::Msg;

/// A bounded queue family that can be wired SPSC or MPSC.
pub(crate) trait Queue {
    /// Which implementation this is.
    const IMPL: Impl;
    /// The producer end.
    type Tx: QueueTx;
    /// The consumer end of an SPSC queue.
    type Rx: QueueRx;
    /// The consumer end of an MPSC wiring (for `rtrb`: one SPSC queue per producer).
    type MpscRx: QueueRx;

    /// One queue with `capacity` slots.
    fn spsc(capacity: usize) -> (Self::Tx, Self::Rx);

    /// One producer end per producer and one consumer end.
    fn mpsc(capacity: usize, producers: usize) -> (Vec<Self::Tx>, Self::MpscRx);
}

/// The producer end of a queue.
pub(crate) trait QueueTx: Send {
    /// Whether [`QueueTx::try_push_chunk`] is a native batch API.
    const NATIVE_BATCH: bool;

    /// Pushes `msg`, or hands it back when the queue is full.
    fn try_push(&mut self, msg: Msg) -> Result<(), Msg>;

    /// Pushes the `n` messages of `msgs` at once if `n` slots are free, else hands `msgs`
    /// back untouched. Only called when `NATIVE_BATCH`.
    fn try_push_chunk<I: Iterator<Item = Msg>>(&mut self, n: usize, msgs: I) -> Result<(), I> {
        let _ = n;
        Err(msgs)
    }
}

/// The consumer end of a queue.
pub(crate) trait QueueRx: Send {
    /// The next message, if any.
    fn try_pop(&mut self) -> Option<Msg>;
}

/// `crossbeam_channel::bounded`.
#[derive(Debug)]
pub(crate) struct CrossbeamChannel;

impl Queue for CrossbeamChannel {
    const IMPL: Impl = Impl::CrossbeamChannel;
    type Tx = crossbeam_channel::Sender<Msg>;
    type Rx = crossbeam_channel::Receiver<Msg>;
    type MpscRx = crossbeam_channel::Receiver<Msg>;

    fn spsc(capacity: usize) -> (Self::Tx, Self::Rx) {
        crossbeam_channel::bounded(capacity)
    }

    fn mpsc(capacity: usize, producers: usize) -> (Vec<Self::Tx>, Self::MpscRx) {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        (vec![tx; producers], rx)
    }
}

impl QueueTx for crossbeam_channel::Sender<Msg> {
    const NATIVE_BATCH: bool = false;

    #[inline]
    fn try_push(&mut self, msg: Msg) -> Result<(), Msg> {
        self.try_send(msg)
            .map_err(crossbeam_channel::TrySendError::into_inner)
    }
}

impl QueueRx for crossbeam_channel::Receiver<Msg> {
    #[inline]
    fn try_pop(&mut self) -> Option<Msg> {
        self.try_recv().ok()
    }
}

/// `crossbeam_queue::ArrayQueue`, shared by `Arc` between the ends.
#[derive(Debug)]
pub(crate) struct CrossbeamArrayQueue;

impl Queue for CrossbeamArrayQueue {
    const IMPL: Impl = Impl::CrossbeamArrayQueue;
    type Tx = Arc<ArrayQueue<Msg>>;
    type Rx = Arc<ArrayQueue<Msg>>;
    type MpscRx = Arc<ArrayQueue<Msg>>;

    fn spsc(capacity: usize) -> (Self::Tx, Self::Rx) {
        let queue = Arc::new(ArrayQueue::new(capacity));
        (Arc::clone(&queue), queue)
    }

    fn mpsc(capacity: usize, producers: usize) -> (Vec<Self::Tx>, Self::MpscRx) {
        let queue = Arc::new(ArrayQueue::new(capacity));
        (vec![Arc::clone(&queue); producers], queue)
    }
}

impl QueueTx for Arc<ArrayQueue<Msg>> {
    const NATIVE_BATCH: bool = false;

    #[inline]
    fn try_push(&mut self, msg: Msg) -> Result<(), Msg> {
        self.push(msg)
    }
}

impl QueueRx for Arc<ArrayQueue<Msg>> {
    #[inline]
    fn try_pop(&mut self) -> Option<Msg> {
        self.pop()
    }
}

/// `rtrb`: SPSC only, so 3p1c gives each producer its own queue and the consumer polls them
/// round-robin.
#[derive(Debug)]
pub(crate) struct Rtrb;

/// The 3p1c consumer end for `rtrb`: one SPSC queue per producer, polled in turn.
#[derive(Debug)]
pub(crate) struct RoundRobin {
    queues: Vec<rtrb::Consumer<Msg>>,
    next: usize,
}

impl Queue for Rtrb {
    const IMPL: Impl = Impl::Rtrb;
    type Tx = rtrb::Producer<Msg>;
    type Rx = rtrb::Consumer<Msg>;
    type MpscRx = RoundRobin;

    fn spsc(capacity: usize) -> (Self::Tx, Self::Rx) {
        rtrb::RingBuffer::new(capacity)
    }

    fn mpsc(capacity: usize, producers: usize) -> (Vec<Self::Tx>, Self::MpscRx) {
        let (txs, queues) = (0..producers)
            .map(|_| rtrb::RingBuffer::new(capacity))
            .unzip();
        (txs, RoundRobin { queues, next: 0 })
    }
}

impl QueueTx for rtrb::Producer<Msg> {
    const NATIVE_BATCH: bool = true;

    #[inline]
    fn try_push(&mut self, msg: Msg) -> Result<(), Msg> {
        self.push(msg).map_err(|rtrb::PushError::Full(msg)| msg)
    }

    #[inline]
    fn try_push_chunk<I: Iterator<Item = Msg>>(&mut self, n: usize, msgs: I) -> Result<(), I> {
        match self.write_chunk_uninit(n) {
            Ok(chunk) => {
                let written = chunk.fill_from_iter(msgs);
                debug_assert_eq!(written, n, "the iterator yields exactly n messages");
                Ok(())
            }
            Err(_) => Err(msgs),
        }
    }
}

impl QueueRx for rtrb::Consumer<Msg> {
    #[inline]
    fn try_pop(&mut self) -> Option<Msg> {
        self.pop().ok()
    }
}

impl QueueRx for RoundRobin {
    #[inline]
    fn try_pop(&mut self) -> Option<Msg> {
        let queues = self.queues.len();
        for _ in 0..queues {
            let index = self.next;
            self.next = if index + 1 == queues { 0 } else { index + 1 };
            if let Ok(msg) = self.queues[index].pop() {
                return Some(msg);
            }
        }
        None
    }
}

/// `std::sync::mpsc::sync_channel`; 3p1c clones the `SyncSender`.
#[derive(Debug)]
pub(crate) struct StdMpsc;

impl Queue for StdMpsc {
    const IMPL: Impl = Impl::StdMpsc;
    type Tx = std::sync::mpsc::SyncSender<Msg>;
    type Rx = std::sync::mpsc::Receiver<Msg>;
    type MpscRx = std::sync::mpsc::Receiver<Msg>;

    fn spsc(capacity: usize) -> (Self::Tx, Self::Rx) {
        std::sync::mpsc::sync_channel(capacity)
    }

    fn mpsc(capacity: usize, producers: usize) -> (Vec<Self::Tx>, Self::MpscRx) {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
        (vec![tx; producers], rx)
    }
}

impl QueueTx for std::sync::mpsc::SyncSender<Msg> {
    const NATIVE_BATCH: bool = false;

    #[inline]
    fn try_push(&mut self, msg: Msg) -> Result<(), Msg> {
        self.try_send(msg).map_err(|err| match err {
            std::sync::mpsc::TrySendError::Full(msg)
            | std::sync::mpsc::TrySendError::Disconnected(msg) => msg,
        })
    }
}

impl QueueRx for std::sync::mpsc::Receiver<Msg> {
    #[inline]
    fn try_pop(&mut self) -> Option<Msg> {
        self.try_recv().ok()
    }
}
