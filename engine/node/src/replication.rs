//! Hot standby replication (docs/replication.md): the primary streams its journal to a standby
//! over TCP, the standby acknowledges what it has written, and both compare `state_digest()` at
//! the same sequences.
//!
//! - [`ToPrimary`] / [`ToStandby`]: the wire messages, `u32` length (LE) then a type byte and a
//!   fixed body. [`FrameReader`] reads them off a socket with a timeout without losing a partial
//!   frame.
//! - [`Shared`]: what the gateway, the journal stage, the core stage and the replication threads
//!   share: the standby's acknowledged sequence, the release bound of replies, the fence.
//! - [`Server`]: the primary's side: an acceptor thread (answers probes, hands a standby to the
//!   sender) and a sender thread that follows the journal with a tailing reader, so a standby
//!   that starts late catches up from the files and then rides the live tail without a gap.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use sequent_journal::Reader;

use crate::config::ReplicationSection;
use crate::record::PAYLOAD_LEN_MAX;

/// Version of the replication protocol in Hello.
pub const VERSION: u16 = 1;
/// The longest frame body either side accepts.
pub const FRAME_BODY_MAX: usize = 64 + PAYLOAD_LEN_MAX;

/// FNV-1a, 64 bits: the record hash of Hello.
#[must_use]
pub fn record_hash(sequence: u64, timestamp_ns: u64, kind: u8, payload: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut write = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    write(&sequence.to_le_bytes());
    write(&timestamp_ns.to_le_bytes());
    write(&[kind]);
    write(payload);
    hash
}

/// Where a journal's history stands: what a standby says in Hello and a primary checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// The highest term in the journal (0 for a journal without restart markers).
    pub term: u64,
    /// The sequence of that term's restart marker (0 when none).
    pub term_start: u64,
    /// The sequence the next record will have.
    pub next_sequence: u64,
    /// [`record_hash`] of the last record (0 for an empty journal).
    pub last_hash: u64,
}

impl Position {
    /// Moves the position past one record.
    pub fn track(&mut self, sequence: u64, timestamp_ns: u64, kind: u8, payload: &[u8]) {
        if let Some(term) = crate::record::restart_term(kind, payload) {
            self.term = term;
            self.term_start = sequence;
        }
        self.next_sequence = sequence + 1;
        self.last_hash = record_hash(sequence, timestamp_ns, kind, payload);
    }
}

/// Messages from a standby (or a probing engine) to a primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToPrimary {
    /// `H`: a standby attaches at its position.
    Hello {
        /// [`VERSION`].
        version: u16,
        /// Where the standby's journal stands.
        position: Position,
    },
    /// `K`: every record up to `sequence` is in the standby's journal.
    Ack {
        /// The sequence.
        sequence: u64,
    },
    /// `D`: the standby's digest at `sequence` differs from the primary's.
    Diverged {
        /// The sequence.
        sequence: u64,
        /// The primary's digest.
        primary: u64,
        /// The standby's digest.
        standby: u64,
    },
    /// `P`: who are you? (answered with [`ToStandby::Status`], then the connection closes).
    Probe,
}

/// Why a primary refused a standby.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RefuseReason {
    /// The standby's journal holds records the primary's does not: it must be archived.
    Diverged = 1,
    /// The primary no longer holds the records the standby needs (retention).
    BehindRetention = 2,
    /// Another standby is attached.
    AlreadyAttached = 3,
    /// Unknown protocol version.
    Version = 4,
    /// The engine is not a primary.
    NotPrimary = 5,
}

impl RefuseReason {
    fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            1 => Self::Diverged,
            2 => Self::BehindRetention,
            3 => Self::AlreadyAttached,
            4 => Self::Version,
            5 => Self::NotPrimary,
            _ => return None,
        })
    }
}

/// What an engine says it is, in [`ToStandby::Status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// Following a primary.
    Standby = 0,
    /// Serving orders.
    Primary = 1,
    /// Replaced by a primary of a later term; serves nothing.
    Fenced = 2,
}

/// Messages from a primary to a standby.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToStandby<'a> {
    /// `W`: the stream starts at `first`.
    Welcome {
        /// The primary's term.
        term: u64,
        /// The first sequence that will follow.
        first: u64,
        /// Digest checkpoints: every multiple of this sequence.
        digest_every: u64,
    },
    /// `X`: refused; the connection closes.
    Refuse {
        /// Why.
        reason: RefuseReason,
        /// The sequence the reason is about.
        sequence: u64,
    },
    /// `R`: one journal record, in sequence.
    Record {
        /// Its sequence.
        sequence: u64,
        /// Its timestamp.
        timestamp_ns: u64,
        /// Its kind.
        kind: u8,
        /// Its payload.
        payload: &'a [u8],
    },
    /// `B`: the primary is alive; `written` is its last journaled sequence.
    Heartbeat {
        /// The last sequence in the primary's journal.
        written: u64,
    },
    /// `G`: the primary's `state_digest()` after applying `sequence`.
    Digest {
        /// The checkpoint.
        sequence: u64,
        /// The digest.
        digest: u64,
    },
    /// `O`: a planned hand-over: the primary has stopped; `last` is its last record. The standby
    /// takes over as soon as it has applied it.
    HandOver {
        /// The last sequence.
        last: u64,
    },
    /// `S`: the answer to a probe.
    Status {
        /// The role.
        role: Role,
        /// The term.
        term: u64,
        /// The next sequence of its journal.
        next_sequence: u64,
    },
}

/// A frame that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("replication frame of type {kind:?}, {len} bytes: {reason}")]
pub struct FrameError {
    /// The type byte (as a character when printable).
    pub kind: char,
    /// The body's length.
    pub len: usize,
    /// What is wrong.
    pub reason: &'static str,
}

fn u64_at(body: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&body[at..at + 8]);
    u64::from_le_bytes(bytes)
}

fn frame(out: &mut Vec<u8>, kind: u8, fields: &[u64], tail: &[u8]) {
    let len = 1 + 8 * fields.len() + tail.len();
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.push(kind);
    for field in fields {
        out.extend_from_slice(&field.to_le_bytes());
    }
    out.extend_from_slice(tail);
}

impl ToPrimary {
    /// Appends the framed message to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Self::Hello { version, position } => frame(
                out,
                b'H',
                &[
                    u64::from(version),
                    position.term,
                    position.term_start,
                    position.next_sequence,
                    position.last_hash,
                ],
                &[],
            ),
            Self::Ack { sequence } => frame(out, b'K', &[sequence], &[]),
            Self::Diverged {
                sequence,
                primary,
                standby,
            } => frame(out, b'D', &[sequence, primary, standby], &[]),
            Self::Probe => frame(out, b'P', &[], &[]),
        }
    }

    /// Decodes a frame body (type byte first).
    pub fn decode(body: &[u8]) -> Result<Self, FrameError> {
        let error = |reason| FrameError {
            kind: body.first().map_or('?', |&b| char::from(b)),
            len: body.len(),
            reason,
        };
        let (&kind, rest) = body.split_first().ok_or_else(|| error("empty frame"))?;
        let want = match kind {
            b'H' => 40,
            b'K' => 8,
            b'D' => 24,
            b'P' => 0,
            _ => return Err(error("unknown message type")),
        };
        if rest.len() != want {
            return Err(error("wrong length for its type"));
        }
        Ok(match kind {
            b'H' => Self::Hello {
                version: u16::try_from(u64_at(rest, 0)).map_err(|_| error("version too large"))?,
                position: Position {
                    term: u64_at(rest, 8),
                    term_start: u64_at(rest, 16),
                    next_sequence: u64_at(rest, 24),
                    last_hash: u64_at(rest, 32),
                },
            },
            b'K' => Self::Ack {
                sequence: u64_at(rest, 0),
            },
            b'D' => Self::Diverged {
                sequence: u64_at(rest, 0),
                primary: u64_at(rest, 8),
                standby: u64_at(rest, 16),
            },
            _ => Self::Probe,
        })
    }
}

impl<'a> ToStandby<'a> {
    /// Appends the framed message to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Self::Welcome {
                term,
                first,
                digest_every,
            } => frame(out, b'W', &[term, first, digest_every], &[]),
            Self::Refuse { reason, sequence } => {
                frame(out, b'X', &[reason as u64, sequence], &[]);
            }
            Self::Record {
                sequence,
                timestamp_ns,
                kind,
                payload,
            } => {
                let len = 1 + 16 + 1 + payload.len();
                out.extend_from_slice(&(len as u32).to_le_bytes());
                out.push(b'R');
                out.extend_from_slice(&sequence.to_le_bytes());
                out.extend_from_slice(&timestamp_ns.to_le_bytes());
                out.push(kind);
                out.extend_from_slice(payload);
            }
            Self::Heartbeat { written } => frame(out, b'B', &[written], &[]),
            Self::Digest { sequence, digest } => frame(out, b'G', &[sequence, digest], &[]),
            Self::HandOver { last } => frame(out, b'O', &[last], &[]),
            Self::Status {
                role,
                term,
                next_sequence,
            } => frame(out, b'S', &[role as u64, term, next_sequence], &[]),
        }
    }

    /// Decodes a frame body (type byte first); a record borrows its payload from `body`.
    pub fn decode(body: &'a [u8]) -> Result<Self, FrameError> {
        let error = |reason| FrameError {
            kind: body.first().map_or('?', |&b| char::from(b)),
            len: body.len(),
            reason,
        };
        let (&kind, rest) = body.split_first().ok_or_else(|| error("empty frame"))?;
        if kind == b'R' {
            if rest.len() < 17 {
                return Err(error("record shorter than its header"));
            }
            if rest.len() - 17 > PAYLOAD_LEN_MAX {
                return Err(error("record payload longer than any engine input"));
            }
            return Ok(Self::Record {
                sequence: u64_at(rest, 0),
                timestamp_ns: u64_at(rest, 8),
                kind: rest[16],
                payload: &rest[17..],
            });
        }
        let want = match kind {
            b'W' | b'S' => 24,
            b'X' | b'G' => 16,
            b'B' | b'O' => 8,
            _ => return Err(error("unknown message type")),
        };
        if rest.len() != want {
            return Err(error("wrong length for its type"));
        }
        Ok(match kind {
            b'W' => Self::Welcome {
                term: u64_at(rest, 0),
                first: u64_at(rest, 8),
                digest_every: u64_at(rest, 16),
            },
            b'X' => Self::Refuse {
                reason: u8::try_from(u64_at(rest, 0))
                    .ok()
                    .and_then(RefuseReason::from_u8)
                    .ok_or_else(|| error("unknown refusal reason"))?,
                sequence: u64_at(rest, 8),
            },
            b'G' => Self::Digest {
                sequence: u64_at(rest, 0),
                digest: u64_at(rest, 8),
            },
            b'B' => Self::Heartbeat {
                written: u64_at(rest, 0),
            },
            b'O' => Self::HandOver {
                last: u64_at(rest, 0),
            },
            _ => Self::Status {
                role: match u64_at(rest, 0) {
                    0 => Role::Standby,
                    1 => Role::Primary,
                    2 => Role::Fenced,
                    _ => return Err(error("unknown role")),
                },
                term: u64_at(rest, 8),
                next_sequence: u64_at(rest, 16),
            },
        })
    }
}

/// Reads length-prefixed frames from a blocking socket with a read timeout; a timeout in the
/// middle of a frame keeps what has arrived.
#[derive(Debug)]
pub struct FrameReader {
    stream: TcpStream,
    buffer: Vec<u8>,
    start: usize,
    end: usize,
}

/// What [`FrameReader::next`] found.
#[derive(Debug)]
pub enum Received<'a> {
    /// A whole frame body (type byte first).
    Frame(&'a [u8]),
    /// Nothing more within the timeout.
    Timeout,
    /// The peer closed the connection.
    Closed,
}

impl FrameReader {
    /// Wraps a connected stream.
    #[must_use]
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buffer: vec![0; 4 * (4 + FRAME_BODY_MAX) + (1 << 16)],
            start: 0,
            end: 0,
        }
    }

    /// Whether a whole frame is already buffered (the next call will not block).
    #[must_use]
    pub fn has_frame(&self) -> bool {
        let available = self.end - self.start;
        available >= 4 && {
            let len = u32::from_le_bytes(
                self.buffer[self.start..self.start + 4]
                    .try_into()
                    .expect("4 bytes"),
            ) as usize;
            available >= 4 + len
        }
    }

    /// The next frame, waiting at most the socket's read timeout for more bytes.
    pub fn next_frame(&mut self) -> io::Result<Received<'_>> {
        loop {
            let available = self.end - self.start;
            if available >= 4 {
                let b = &self.buffer[self.start..self.start + 4];
                let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
                if len == 0 || len > FRAME_BODY_MAX {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("replication frame length {len} is outside 1..={FRAME_BODY_MAX}"),
                    ));
                }
                if available >= 4 + len {
                    let at = self.start + 4;
                    self.start += 4 + len;
                    return Ok(Received::Frame(&self.buffer[at..at + len]));
                }
            }
            if self.start > 0 && self.buffer.len() - self.end < 4 + FRAME_BODY_MAX {
                self.buffer.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            match self.stream.read(&mut self.buffer[self.end..]) {
                Ok(0) => return Ok(Received::Closed),
                Ok(n) => self.end += n,
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(Received::Timeout);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }

    /// The stream, for writing.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }
}

/// Asks the engine at `address` what it is. `None` when nothing answers within `timeout`.
#[must_use]
pub fn probe(address: SocketAddr, timeout: Duration) -> Option<(Role, u64, u64)> {
    let mut stream = TcpStream::connect_timeout(&address, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    let mut out = Vec::new();
    ToPrimary::Probe.encode(&mut out);
    stream.write_all(&out).ok()?;
    let mut reader = FrameReader::new(stream);
    match reader.next_frame().ok()? {
        Received::Frame(body) => match ToStandby::decode(body).ok()? {
            ToStandby::Status {
                role,
                term,
                next_sequence,
            } => Some((role, term, next_sequence)),
            _ => None,
        },
        _ => None,
    }
}

/// What the gateway, the stages and the replication threads of one engine share.
#[derive(Debug)]
pub struct Shared {
    /// This engine's term.
    pub term: u64,
    /// `[replication] standby_ack`.
    pub standby_ack: bool,
    /// The last sequence the attached standby has written.
    pub standby_acked: AtomicU64,
    /// Whether a standby is attached.
    pub attached: AtomicBool,
    /// Replies go out without the standby (it has been gone longer than `degrade_after_ms`, or
    /// this engine was promoted and has no standby yet).
    pub degraded: AtomicBool,
    /// A primary of a later term exists: release nothing, serve nothing.
    pub fenced: AtomicBool,
    /// Digest checkpoints from the core stage, oldest first.
    digests: Mutex<VecDeque<(u64, u64)>>,
    /// The sender thread, woken after every batch the journal stage appends.
    sender: OnceLock<Thread>,
    /// The last sequence the journal stage appended.
    pub written: AtomicU64,
    /// Digest mismatches reported by the standby (an alarm: `sequent_replication_divergence`).
    pub divergences: AtomicU64,
    /// Sequence of the last reported mismatch.
    pub divergence_sequence: AtomicU64,
}

impl Shared {
    /// State for an engine starting `term`; `degraded` when it starts without a standby it can
    /// wait for (a promoted standby).
    #[must_use]
    pub fn new(term: u64, standby_ack: bool, degraded: bool) -> Self {
        Self {
            term,
            standby_ack,
            standby_acked: AtomicU64::new(0),
            attached: AtomicBool::new(false),
            degraded: AtomicBool::new(degraded),
            fenced: AtomicBool::new(false),
            digests: Mutex::new(VecDeque::with_capacity(64)),
            sender: OnceLock::new(),
            written: AtomicU64::new(0),
            divergences: AtomicU64::new(0),
            divergence_sequence: AtomicU64::new(0),
        }
    }

    /// Replies whose input sequence is at most this may go out (as far as replication goes).
    #[must_use]
    pub fn release_bound(&self) -> u64 {
        if self.fenced.load(Ordering::Acquire) {
            0
        } else if !self.standby_ack || self.degraded.load(Ordering::Acquire) {
            u64::MAX
        } else if self.attached.load(Ordering::Acquire) {
            self.standby_acked.load(Ordering::Acquire)
        } else {
            0
        }
    }

    /// The core stage's digest at a checkpoint.
    pub fn push_digest(&self, sequence: u64, digest: u64) {
        if let Ok(mut digests) = self.digests.lock() {
            if digests.len() == 64 {
                digests.pop_front();
            }
            digests.push_back((sequence, digest));
        }
    }

    /// The journal stage appended up to `sequence`: wake the sender.
    pub fn appended(&self, sequence: u64) {
        self.written.store(sequence, Ordering::Release);
        if let Some(thread) = self.sender.get() {
            thread.unpark();
        }
    }
}

/// The primary's replication endpoint.
#[derive(Debug)]
pub struct Server {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Set by the engine when it has stopped: the sender hands over up to this sequence.
    finish: Arc<AtomicU64>,
    acceptor: Option<JoinHandle<()>>,
    sender: Option<JoinHandle<()>>,
}

struct SenderContext {
    dir: PathBuf,
    config: ReplicationSection,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    finish: Arc<AtomicU64>,
    waker: Option<Arc<mio::Waker>>,
}

impl Server {
    /// Binds `config.listen` and starts the acceptor and sender threads for the journal in `dir`.
    pub fn start(
        dir: &Path,
        config: ReplicationSection,
        listen: SocketAddr,
        shared: Arc<Shared>,
        waker: Option<Arc<mio::Waker>>,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let finish = Arc::new(AtomicU64::new(0));
        let (handoff, standbys) = mpsc::sync_channel::<(FrameReader, Position)>(1);
        let context = SenderContext {
            dir: dir.to_path_buf(),
            config,
            shared: Arc::clone(&shared),
            stop: Arc::clone(&stop),
            finish: Arc::clone(&finish),
            waker,
        };
        let sender = std::thread::Builder::new()
            .name("replication".into())
            .spawn(move || run_sender(&context, &standbys))?;
        let _ = shared.sender.set(sender.thread().clone());
        let acceptor_stop = Arc::clone(&stop);
        let dir = dir.to_path_buf();
        let acceptor = std::thread::Builder::new()
            .name("replication-accept".into())
            .spawn(move || run_acceptor(&listener, &dir, &shared, &acceptor_stop, &handoff))?;
        Ok(Self {
            address,
            stop,
            finish,
            acceptor: Some(acceptor),
            sender: Some(sender),
        })
    }

    /// The bound address.
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The engine has stopped with `last` as its last record: hand over to the attached standby
    /// (bounded wait), then stop the threads.
    pub fn finish(mut self, last: u64) {
        self.finish.store(last.max(1), Ordering::Release);
        if let Some(sender) = self.sender.take() {
            sender.thread().unpark();
            let _ = sender.join();
        }
        self.stop.store(true, Ordering::Release);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(sender) = self.sender.take() {
            sender.thread().unpark();
            let _ = sender.join();
        }
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn run_acceptor(
    listener: &TcpListener,
    dir: &Path,
    shared: &Shared,
    stop: &AtomicBool,
    handoff: &mpsc::SyncSender<(FrameReader, Position)>,
) {
    while !stop.load(Ordering::Acquire) {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            Err(_) => {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut reader = FrameReader::new(stream);
        let message = match reader.next_frame() {
            Ok(Received::Frame(body)) => ToPrimary::decode(body).ok(),
            _ => None,
        };
        let mut out = Vec::new();
        match message {
            Some(ToPrimary::Probe) => {
                let role = if shared.fenced.load(Ordering::Acquire) {
                    Role::Fenced
                } else {
                    Role::Primary
                };
                ToStandby::Status {
                    role,
                    term: shared.term,
                    next_sequence: shared.written.load(Ordering::Acquire) + 1,
                }
                .encode(&mut out);
                let _ = reader.stream().write_all(&out);
            }
            Some(ToPrimary::Hello { version, position }) => {
                let refusal = if version != VERSION {
                    Some((RefuseReason::Version, 0))
                } else if shared.fenced.load(Ordering::Acquire) {
                    Some((RefuseReason::NotPrimary, 0))
                } else if shared.attached.load(Ordering::Acquire) {
                    Some((RefuseReason::AlreadyAttached, 0))
                } else {
                    check_position(dir, shared.written.load(Ordering::Acquire), position)
                };
                if let Some((reason, sequence)) = refusal {
                    ToStandby::Refuse { reason, sequence }.encode(&mut out);
                    let _ = reader.stream().write_all(&out);
                    tracing::warn!(
                        "replication: refused a standby at {}: {reason:?} at sequence {sequence}",
                        position.next_sequence
                    );
                    continue;
                }
                if let Err(mpsc::TrySendError::Full((mut reader, _))) =
                    handoff.try_send((reader, position))
                {
                    ToStandby::Refuse {
                        reason: RefuseReason::AlreadyAttached,
                        sequence: 0,
                    }
                    .encode(&mut out);
                    let _ = reader.stream().write_all(&out);
                }
                if let Some(sender) = shared.sender.get() {
                    sender.unpark();
                }
            }
            _ => {}
        }
    }
}

/// Whether a standby at `position` shares this journal's history; `Some` refusal when not.
fn check_position(dir: &Path, written: u64, position: Position) -> Option<(RefuseReason, u64)> {
    let last = position.next_sequence.saturating_sub(1);
    if last > written {
        return Some((RefuseReason::Diverged, last));
    }
    let hash_at = |sequence: u64| -> Result<Option<(u64, Option<u64>)>, sequent_journal::Error> {
        let mut reader = Reader::from_sequence(dir, sequence)?;
        Ok(reader.next()?.map(|r| {
            (
                record_hash(r.sequence, r.timestamp_ns, r.kind, r.payload),
                crate::record::restart_term(r.kind, r.payload),
            )
        }))
    };
    if position.term_start > 0 {
        match hash_at(position.term_start) {
            Ok(Some((_, Some(term)))) if term == position.term => {}
            Ok(_) => return Some((RefuseReason::Diverged, position.term_start)),
            Err(_) => return Some((RefuseReason::BehindRetention, position.term_start)),
        }
    }
    if last > 0 {
        match hash_at(last) {
            Ok(Some((hash, _))) if hash == position.last_hash => {}
            Ok(_) => return Some((RefuseReason::Diverged, last)),
            Err(_) => return Some((RefuseReason::BehindRetention, last)),
        }
    }
    if last == 0 {
        // A standby with an empty journal needs this one from its first record.
        if let Err(sequent_journal::Error::NoSuchSequence { .. }) = Reader::from_sequence(dir, 1) {
            return Some((RefuseReason::BehindRetention, 1));
        }
    }
    None
}

fn run_sender(context: &SenderContext, standbys: &mpsc::Receiver<(FrameReader, Position)>) {
    let shared = &context.shared;
    let mut detached_since = Instant::now();
    let mut last_probe = Instant::now();
    loop {
        if context.stop.load(Ordering::Acquire) || context.finish.load(Ordering::Acquire) > 0 {
            return;
        }
        match standbys.try_recv() {
            Ok((reader, position)) => {
                stream_to(context, reader, position);
                detached_since = Instant::now();
                wake(context.waker.as_ref());
                continue;
            }
            Err(mpsc::TryRecvError::Disconnected) => return,
            Err(mpsc::TryRecvError::Empty) => {}
        }
        // No standby: degrade after the configured time, and ask the peer whether it replaced us.
        let config = &context.config;
        if shared.standby_ack
            && config.degrade_after_ms > 0
            && !shared.degraded.load(Ordering::Acquire)
            && detached_since.elapsed() >= Duration::from_millis(config.degrade_after_ms)
            && !shared.fenced.load(Ordering::Acquire)
        {
            shared.degraded.store(true, Ordering::Release);
            tracing::error!(
                "ALARM replication: no standby for {} ms, releasing replies without one",
                config.degrade_after_ms
            );
            wake(context.waker.as_ref());
        }
        if let Some(peer) = config.peer {
            if last_probe.elapsed() >= Duration::from_millis(config.heartbeat_interval_ms) {
                last_probe = Instant::now();
                if let Some((Role::Primary, term, _)) =
                    probe(peer, Duration::from_millis(config.heartbeat_interval_ms))
                {
                    // Only a later term fences: the peer may be an old primary not yet fenced.
                    if term > shared.term && !shared.fenced.swap(true, Ordering::AcqRel) {
                        tracing::error!(
                            "FENCED: {peer} is primary in term {term} (ours {}); this engine stops serving",
                            shared.term
                        );
                        wake(context.waker.as_ref());
                    }
                }
            }
        }
        std::thread::park_timeout(Duration::from_millis(config.heartbeat_interval_ms));
    }
}

fn wake(waker: Option<&Arc<mio::Waker>>) {
    if let Some(waker) = waker {
        let _ = waker.wake();
    }
}

/// Streams the journal to one standby until it goes, the engine stops, or the hand-over is done.
fn stream_to(context: &SenderContext, mut reader: FrameReader, position: Position) {
    let shared = &context.shared;
    let config = &context.config;
    let first = position.next_sequence.max(1);
    let mut journal = match Reader::follow(&context.dir, first) {
        Ok(journal) => journal,
        Err(error) => {
            tracing::warn!("replication: cannot read the journal from {first}: {error}");
            return;
        }
    };
    let Ok(read_half) = reader.stream().try_clone() else {
        return;
    };
    let mut out = Vec::with_capacity(1 << 20);
    ToStandby::Welcome {
        term: shared.term,
        first,
        digest_every: config.digest_every,
    }
    .encode(&mut out);
    if reader.stream().write_all(&out).is_err() {
        return;
    }
    out.clear();
    shared.standby_acked.store(first - 1, Ordering::Release);
    shared.attached.store(true, Ordering::Release);
    tracing::info!("replication: a standby attached at sequence {first}");
    // Acknowledgements arrive on their own thread.
    let gone = Arc::new(AtomicBool::new(false));
    let acks = {
        let shared = Arc::clone(shared);
        let gone = Arc::clone(&gone);
        let sender = std::thread::current();
        let waker = context.waker.clone();
        let _ = read_half.set_read_timeout(None);
        std::thread::Builder::new()
            .name("replication-acks".into())
            .spawn(move || {
                read_acks(read_half, &shared, waker.as_ref());
                gone.store(true, Ordering::Release);
                sender.unpark();
            })
    };
    let mut writer = reader.stream().try_clone().ok();
    let heartbeat = Duration::from_millis(config.heartbeat_interval_ms);
    let mut last_send = Instant::now();
    let mut pending_digests: VecDeque<(u64, u64)> = VecDeque::new();
    let mut handed_over = false;
    'stream: loop {
        if gone.load(Ordering::Acquire) || context.stop.load(Ordering::Acquire) {
            break;
        }
        let mut records = 0;
        loop {
            match journal.next() {
                Ok(Some(record)) => {
                    ToStandby::Record {
                        sequence: record.sequence,
                        timestamp_ns: record.timestamp_ns,
                        kind: record.kind,
                        payload: record.payload,
                    }
                    .encode(&mut out);
                    records += 1;
                    if out.len() >= 256 * 1024 {
                        break;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!("replication: journal read failed: {error}");
                    break 'stream;
                }
            }
        }
        let sent_through = journal.next_sequence() - 1;
        if let Ok(mut digests) = shared.digests.lock() {
            pending_digests.extend(digests.drain(..));
        }
        while let Some(&(sequence, digest)) = pending_digests.front() {
            if sequence > sent_through {
                break;
            }
            ToStandby::Digest { sequence, digest }.encode(&mut out);
            pending_digests.pop_front();
        }
        let finish = context.finish.load(Ordering::Acquire);
        if finish > 0 && sent_through >= finish && !handed_over {
            ToStandby::HandOver { last: finish }.encode(&mut out);
            handed_over = true;
        }
        if out.is_empty() && last_send.elapsed() >= heartbeat {
            ToStandby::Heartbeat {
                written: shared.written.load(Ordering::Acquire),
            }
            .encode(&mut out);
        }
        if !out.is_empty() {
            let Some(stream) = writer.as_mut() else {
                break;
            };
            if stream.write_all(&out).is_err() {
                break;
            }
            out.clear();
            last_send = Instant::now();
        }
        if handed_over {
            // Wait (bounded) for the standby to acknowledge the last record, then stop.
            let deadline = Instant::now() + Duration::from_secs(5);
            while shared.standby_acked.load(Ordering::Acquire) < finish
                && !gone.load(Ordering::Acquire)
                && Instant::now() < deadline
            {
                std::thread::park_timeout(Duration::from_millis(1));
            }
            break;
        }
        if records == 0 {
            std::thread::park_timeout(heartbeat);
        }
    }
    shared.attached.store(false, Ordering::Release);
    if let Some(stream) = writer {
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
    if let Ok(handle) = acks {
        let _ = handle.join();
    }
    tracing::info!("replication: the standby detached");
}

fn read_acks(stream: TcpStream, shared: &Shared, waker: Option<&Arc<mio::Waker>>) {
    let mut reader = FrameReader::new(stream);
    loop {
        let body = match reader.next_frame() {
            Ok(Received::Frame(body)) => body,
            Ok(Received::Timeout) => continue,
            Ok(Received::Closed) | Err(_) => return,
        };
        match ToPrimary::decode(body) {
            Ok(ToPrimary::Ack { sequence }) => {
                shared.standby_acked.fetch_max(sequence, Ordering::AcqRel);
                if shared.standby_ack
                    && shared.degraded.load(Ordering::Acquire)
                    && sequence >= shared.written.load(Ordering::Acquire)
                {
                    shared.degraded.store(false, Ordering::Release);
                    tracing::info!("replication: the standby caught up; replies wait for it again");
                }
                wake(waker);
            }
            Ok(ToPrimary::Diverged {
                sequence,
                primary,
                standby,
            }) => {
                shared.divergences.fetch_add(1, Ordering::AcqRel);
                shared
                    .divergence_sequence
                    .store(sequence, Ordering::Release);
                tracing::error!(
                    "ALARM replication: the standby's state differs at sequence {sequence}: primary {primary:016x}, standby {standby:016x}"
                );
            }
            Ok(_) | Err(_) => {
                tracing::warn!("replication: a bad frame from the standby; detaching");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let position = Position {
            term: 3,
            term_start: 10,
            next_sequence: 99,
            last_hash: 0xdead_beef,
        };
        for message in [
            ToPrimary::Hello {
                version: VERSION,
                position,
            },
            ToPrimary::Ack { sequence: 7 },
            ToPrimary::Diverged {
                sequence: 1,
                primary: 2,
                standby: 3,
            },
            ToPrimary::Probe,
        ] {
            let mut out = Vec::new();
            message.encode(&mut out);
            let len = u32::from_le_bytes(out[..4].try_into().unwrap()) as usize;
            assert_eq!(len, out.len() - 4);
            assert_eq!(ToPrimary::decode(&out[4..]), Ok(message));
        }
        let payload = [1u8, 2, 3, 4, 5];
        for message in [
            ToStandby::Welcome {
                term: 1,
                first: 2,
                digest_every: 3,
            },
            ToStandby::Refuse {
                reason: RefuseReason::Diverged,
                sequence: 4,
            },
            ToStandby::Record {
                sequence: 5,
                timestamp_ns: 6,
                kind: 1,
                payload: &payload,
            },
            ToStandby::Heartbeat { written: 8 },
            ToStandby::Digest {
                sequence: 9,
                digest: 10,
            },
            ToStandby::HandOver { last: 11 },
            ToStandby::Status {
                role: Role::Fenced,
                term: 12,
                next_sequence: 13,
            },
        ] {
            let mut out = Vec::new();
            message.encode(&mut out);
            let len = u32::from_le_bytes(out[..4].try_into().unwrap()) as usize;
            assert_eq!(len, out.len() - 4);
            assert_eq!(ToStandby::decode(&out[4..]), Ok(message));
        }
    }

    #[test]
    fn bad_frames_are_named() {
        assert_eq!(
            ToPrimary::decode(b"K123").unwrap_err().reason,
            "wrong length for its type"
        );
        assert_eq!(
            ToStandby::decode(b"Z").unwrap_err().reason,
            "unknown message type"
        );
        assert_eq!(ToStandby::decode(&[]).unwrap_err().reason, "empty frame");
        let mut refuse = Vec::new();
        ToStandby::Refuse {
            reason: RefuseReason::Version,
            sequence: 0,
        }
        .encode(&mut refuse);
        refuse[5] = 99;
        assert_eq!(
            ToStandby::decode(&refuse[4..]).unwrap_err().reason,
            "unknown refusal reason"
        );
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = ToPrimary::decode(&bytes);
            let _ = ToStandby::decode(&bytes);
        }
    }

    #[test]
    fn the_release_bound_follows_the_mode() {
        let off = Shared::new(1, false, false);
        assert_eq!(off.release_bound(), u64::MAX);
        let sync = Shared::new(1, true, false);
        assert_eq!(sync.release_bound(), 0, "no standby attached: hold");
        sync.attached.store(true, Ordering::Release);
        sync.standby_acked.store(42, Ordering::Release);
        assert_eq!(sync.release_bound(), 42);
        sync.degraded.store(true, Ordering::Release);
        assert_eq!(sync.release_bound(), u64::MAX);
        sync.fenced.store(true, Ordering::Release);
        assert_eq!(sync.release_bound(), 0, "fenced: nothing goes out");
    }
}
