//! A ledger shard's engine on the sequent ring: the same shape as `sequent-engine`
//! (engine/node/src/engine.rs), sized for one `cross_shard::Shard`.
//!
//! ```text
//! connection threads ─▶ [input ring] ─┬─▶ journal stage (append; one sync per batch)
//!  (decode frames)                    └─▶ apply stage (Shard::handle) ─▶ [output ring]
//!                                                                           │
//!                           reply stage ◀───────────────────────────────────┘
//!                           (writes a reply only once the journal's durable sequence covers
//!                            its input: an answer the coordinator saw is never lost)
//! ```
//!
//! The journal and apply stages run in parallel on every input; neither waits for the other.
//! Both derive the input's time and journal sequence from the slot alone, the same way, so they
//! agree without talking: time is `max(time so far, the wall clock the connection thread read)`
//! (sequenced time never goes backwards, whatever the clock does or in which order two
//! connection threads read it), and the journal sequence is the journal's first free sequence at
//! start plus the ring sequence (the journal stage is the journal's only appender, and asserts it).
//! Replay on start is the same `Shard::handle` with the journaled times.
//!
//! A journal that cannot append or sync stops the process (fail-stop, exit code 1): a shard that
//! cannot keep its record must not answer.

use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use sequent_journal::{DurableWatch, Writer};
use sequent_ledger::cross_shard::{Shard, ShardInput, ToCoordinator, ToShard};
use sequent_ring::{
    EventHandler, MultiProducer, Producer, SingleProducer, WaitStrategy, build_multi_producer,
    build_single_producer,
};

use crate::ledger_shards::{JOURNAL_KIND_SHARD_INPUT, wall_ns};
use crate::ledger_wire::{
    FRAME_LEN_MAX, decode_to_shard, encode_shard_input, encode_to_coordinator, read_frame,
    write_frame,
};

/// Slots of the input ring: coordinator messages received, not yet journaled and applied.
pub const INPUT_SLOTS: usize = 1024;
/// Slots of the output ring: replies waiting for their input to be durable.
pub const OUTPUT_SLOTS: usize = 1024;
const _: () = assert!(INPUT_SLOTS.is_power_of_two());
const _: () = assert!(OUTPUT_SLOTS.is_power_of_two());
// A full ring is only back-pressure (a connection thread waits, TCP pushes back on the
// coordinator), never a loss; the coordinator's 64 open transfers send at most 128 messages a
// tick in all, so at this size a tick's resends never wait.
const _: () = assert!(INPUT_SLOTS >= 2 * 64 && OUTPUT_SLOTS >= 2 * 64);

/// How long the reply stage waits for durability before it checks again (the journal stage
/// exits the process if the journal fails, so this only bounds one wait).
const DURABLE_WAIT: Duration = Duration::from_secs(1);

/// One coordinator message as a connection thread published it.
#[derive(Clone, Copy, Debug, Default)]
struct InputSlot {
    /// The wall clock when the frame was decoded; the stages make it monotonic.
    wall_ns: u64,
    /// Which connection to answer (ids from 1, never reused in one process).
    connection: u64,
    /// `Some` in every published slot; `None` only in the factory's filler.
    message: Option<ToShard>,
}

/// One reply, held by the reply stage until `journal_sequence` is durable.
#[derive(Clone, Copy, Debug, Default)]
struct OutputSlot {
    journal_sequence: u64,
    connection: u64,
    /// `Some` in every published slot.
    reply: Option<ToCoordinator>,
}

/// What the acceptor tells the reply stage about connections.
enum Registration {
    /// Sent before the connection's thread starts, so before any reply to it exists.
    Opened(u64, TcpStream),
    /// The connection's thread ended; replies still owed to it are dropped (the coordinator
    /// resends on its tick).
    Closed(u64),
}

/// Which wait strategy the shard's stages use when idle.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum Wait {
    /// Park (futex); the default: the CI machine has two cores.
    #[default]
    Blocking,
    /// `sched_yield` in a loop.
    Yielding,
    /// Spin; only with a core per stage.
    BusySpin,
}

impl Wait {
    fn strategy(self) -> WaitStrategy {
        match self {
            Wait::Blocking => WaitStrategy::blocking(),
            Wait::Yielding => WaitStrategy::Yielding,
            Wait::BusySpin => WaitStrategy::BusySpin,
        }
    }
}

/// Prints why and exits 1: a shard whose record or ring failed must not answer again.
fn fail_stop(index: u32, what: &str) -> ! {
    eprintln!("sequent ledger shard {index}: {what}; stopping");
    std::process::exit(1)
}

/// Appends every input; syncs once per batch (group commit).
struct JournalStage {
    index: u32,
    writer: Writer,
    now_ns: u64,
    /// The journal sequence of ring sequence 0.
    first_sequence: u64,
}

impl EventHandler<InputSlot> for JournalStage {
    fn on_event(&mut self, slot: &InputSlot, sequence: i64, end_of_batch: bool) {
        let message = slot.message.expect("a published slot carries a message");
        self.now_ns = self.now_ns.max(slot.wall_ns);
        let input = ShardInput {
            ts: self.now_ns,
            message,
        };
        match self.writer.append(
            JOURNAL_KIND_SHARD_INPUT,
            self.now_ns,
            &encode_shard_input(&input),
        ) {
            Ok(journaled) => assert_eq!(
                journaled,
                self.first_sequence + sequence as u64,
                "the journal stage is the journal's only appender"
            ),
            Err(e) => fail_stop(self.index, &format!("cannot journal: {e}")),
        }
        if end_of_batch && let Err(e) = self.writer.sync() {
            fail_stop(self.index, &format!("cannot sync the journal: {e}"));
        }
    }

    fn on_shutdown(&mut self) {
        if let Err(e) = self.writer.sync() {
            fail_stop(self.index, &format!("cannot sync the journal: {e}"));
        }
    }
}

/// Applies every input to the shard and publishes its reply on the output ring.
struct ApplyStage {
    index: u32,
    shard: Shard,
    now_ns: u64,
    first_sequence: u64,
    output: SingleProducer<OutputSlot>,
}

impl EventHandler<InputSlot> for ApplyStage {
    fn on_event(&mut self, slot: &InputSlot, sequence: i64, _end_of_batch: bool) {
        let message = slot.message.expect("a published slot carries a message");
        // The same time the journal stage records for this input (see the module docs).
        self.now_ns = self.now_ns.max(slot.wall_ns);
        let reply = self.shard.handle(&ShardInput {
            ts: self.now_ns,
            message,
        });
        let journal_sequence = self.first_sequence + sequence as u64;
        let connection = slot.connection;
        if self
            .output
            .publish(|out| {
                *out = OutputSlot {
                    journal_sequence,
                    connection,
                    reply: Some(reply),
                }
            })
            .is_err()
        {
            fail_stop(self.index, "the reply stage stopped");
        }
    }
}

/// Writes replies to their connections once their inputs are durable.
struct ReplyStage {
    durable: DurableWatch,
    registrations: mpsc::Receiver<Registration>,
    connections: BTreeMap<u64, BufWriter<TcpStream>>,
}

impl ReplyStage {
    fn register(&mut self) {
        while let Ok(registration) = self.registrations.try_recv() {
            match registration {
                Registration::Opened(id, stream) => {
                    self.connections.insert(id, BufWriter::new(stream));
                }
                Registration::Closed(id) => {
                    self.connections.remove(&id);
                }
            }
        }
    }

    fn flush(&mut self) {
        self.connections
            .retain(|_, connection| connection.flush().is_ok());
    }
}

impl EventHandler<OutputSlot> for ReplyStage {
    fn on_event(&mut self, slot: &OutputSlot, _sequence: i64, end_of_batch: bool) {
        let reply = slot.reply.expect("a published slot carries a reply");
        if slot.journal_sequence > self.durable.durable_sequence() {
            // Replies already released go out now rather than behind this sync.
            self.flush();
            while !self
                .durable
                .wait_durable(slot.journal_sequence, DURABLE_WAIT)
            {}
        }
        assert!(
            slot.journal_sequence <= self.durable.durable_sequence(),
            "a reply leaves only once its input is durable"
        );
        if !self.connections.contains_key(&slot.connection) {
            self.register();
        }
        if let Some(connection) = self.connections.get_mut(&slot.connection)
            && write_frame(connection, &encode_to_coordinator(&reply)).is_err()
        {
            self.connections.remove(&slot.connection);
        }
        if end_of_batch {
            self.flush();
        }
    }
}

/// Builds the shard's rings and stages over `shard` (already replayed to the journal's end,
/// `now_ns` its last journaled time) and serves coordinator connections on `listener`, each on
/// its own thread, for ever. Returns only if accepting fails.
pub fn serve(
    index: u32,
    listener: &TcpListener,
    shard: Shard,
    writer: Writer,
    now_ns: u64,
    wait: Wait,
) -> anyhow::Result<()> {
    let first_sequence = writer.next_sequence();
    let (registered, registrations) = mpsc::channel();
    let output = build_single_producer(OUTPUT_SLOTS, OutputSlot::default, wait.strategy())
        .thread_name(format!("shard{index}-reply"))
        .handle_events_with(ReplyStage {
            durable: writer.durable_watch(),
            registrations,
            connections: BTreeMap::new(),
        })
        .build()
        .context("cannot build the output ring")?;
    let input: MultiProducer<InputSlot> =
        build_multi_producer(INPUT_SLOTS, InputSlot::default, wait.strategy())
            .thread_name(format!("shard{index}-journal"))
            .handle_events_with(JournalStage {
                index,
                writer,
                now_ns,
                first_sequence,
            })
            .thread_name(format!("shard{index}-apply"))
            .handle_events_with(ApplyStage {
                index,
                shard,
                now_ns,
                first_sequence,
                output,
            })
            .build()
            .context("cannot build the input ring")?;
    let mut next_connection = 1u64;
    loop {
        let (stream, peer) = listener.accept().context("cannot accept")?;
        stream.set_nodelay(true).ok();
        let Ok(replies) = stream.try_clone() else {
            continue;
        };
        let connection = next_connection;
        next_connection += 1;
        // Before the thread starts: no reply to this connection can reach the reply stage first.
        if registered
            .send(Registration::Opened(connection, replies))
            .is_err()
        {
            fail_stop(index, "the reply stage stopped");
        }
        let producer = input.clone();
        let registered = registered.clone();
        std::thread::Builder::new()
            .name(format!("shard{index}-conn{connection}"))
            .spawn(move || {
                read_connection(index, peer, stream, connection, producer);
                let _ = registered.send(Registration::Closed(connection));
            })
            .context("cannot start a connection thread")?;
    }
}

/// Decodes frames from one coordinator connection into the input ring until it ends.
fn read_connection(
    index: u32,
    peer: SocketAddr,
    stream: TcpStream,
    connection: u64,
    mut producer: MultiProducer<InputSlot>,
) {
    let mut reader = BufReader::new(&stream);
    let mut frame = Vec::with_capacity(FRAME_LEN_MAX);
    let ended: anyhow::Result<()> = loop {
        match read_frame(&mut reader, &mut frame) {
            Ok(true) => {}
            Ok(false) => break Ok(()),
            Err(e) => break Err(e.into()),
        }
        let Some(message) = decode_to_shard(&frame) else {
            break Err(anyhow::anyhow!("not a coordinator message"));
        };
        let published = producer.publish(|slot| {
            *slot = InputSlot {
                wall_ns: wall_ns(),
                connection,
                message: Some(message),
            }
        });
        if published.is_err() {
            fail_stop(index, "a ring stage stopped");
        }
    };
    if let Err(e) = ended {
        eprintln!("sequent ledger shard {index}: connection from {peer} ended: {e:#}");
    }
    // Replies still owed fail to write and are dropped; the coordinator resends.
    let _ = stream.shutdown(Shutdown::Both);
}
