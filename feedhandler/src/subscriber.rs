//! The subscriber's sans-IO core: A/B arbitration, gap detection, retransmission requests, a
//! bounded out-of-order buffer, snapshot fallback, the gap-tolerant mode, and the books.
//!
//! Inputs are `handle_*` calls with the time passed in; outputs are [`Subscriber::poll_action`]
//! (a retransmission or snapshot request for the transport to send). No silent gap: in the
//! default [`Recovery::Complete`] mode a message is applied only when every earlier one has
//! been, and a gap ends only by retransmission or by a snapshot; [`Recovery::GapTolerant`]
//! skips gaps but counts every skipped message.

use std::collections::{BTreeMap, VecDeque};

use hdrhistogram::Histogram;

use crate::book::{Books, SnapshotError};
use crate::proto::{DecodeError, Message, Packet, PacketKind, SESSION_LEN};

/// How gaps end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Every message, in order: retransmission, then snapshot.
    Complete,
    /// Fresh data first (Aeron users ask for this): a gap is skipped and counted, late packets
    /// are dropped. Books may miss updates; `Stats::messages_skipped` says how many.
    GapTolerant,
}

/// How a subscriber that joins mid-session starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// Ask for a snapshot when the first packet is not sequence 1.
    Snapshot,
    /// Ask for the missed range by retransmission (works while it is in the history).
    Retransmit,
}

/// Limits and timers of a subscriber.
#[derive(Debug, Clone, Copy)]
pub struct SubscriberConfig {
    pub recovery: Recovery,
    pub join: Join,
    /// Most packets held out of order; beyond it the oldest is dropped and a snapshot asked for.
    pub reorder_packets_max: usize,
    /// Most bytes held out of order (same overflow rule).
    pub reorder_bytes_max: usize,
    /// How long a gap may stay open before a retransmission is asked (lets the other line fill it).
    pub gap_wait_ns: u64,
    /// How long to wait for a retransmission before asking again.
    pub retransmit_timeout_ns: u64,
    /// Requests for one gap before falling back to a snapshot.
    pub retransmit_attempts_max: u32,
    /// How long to wait for a snapshot before asking again.
    pub snapshot_timeout_ns: u64,
}

impl Default for SubscriberConfig {
    fn default() -> Self {
        SubscriberConfig {
            recovery: Recovery::Complete,
            join: Join::Snapshot,
            reorder_packets_max: 1024,
            reorder_bytes_max: 4 << 20,
            gap_wait_ns: 1_000_000,
            retransmit_timeout_ns: 5_000_000,
            retransmit_attempts_max: 3,
            snapshot_timeout_ns: 200_000_000,
        }
    }
}

/// Most retransmission requests one timer round sends (one per hole).
pub const RETRANSMIT_HOLES_MAX: usize = 64;

/// Where a packet came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    A,
    B,
    /// A unicast answer to a retransmission request.
    Retransmit,
}

/// What the transport must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Ask the retransmission server for `count` messages from `from_seq`.
    Retransmit { from_seq: u64, count: u64 },
    /// Ask the snapshot server for every book.
    Snapshot,
}

/// Index into [`Stats::snapshot_reasons`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotReason {
    LateJoin = 0,
    ReorderOverflow = 1,
    RetransmitExhausted = 2,
    Unavailable = 3,
    SnapshotTimeout = 4,
}

/// Counters (all monotonic) and the one-way latency histogram.
#[derive(Debug, Clone)]
pub struct Stats {
    pub packets: u64,
    pub packets_a: u64,
    pub packets_b: u64,
    pub packets_retransmitted: u64,
    pub messages: u64,
    pub heartbeats: u64,
    /// Packets whose every message had already been applied (the other line's copy, a
    /// duplicate, or a late retransmission).
    pub duplicate_packets: u64,
    /// Gaps that needed recovery: outlived `gap_wait_ns`, or closed by a snapshot.
    pub gaps_seen: u64,
    /// Holes the other line's copy filled before any request went out (A/B arbitration; not
    /// counted in `gaps_seen`).
    pub gaps_filled_by_other_line: u64,
    pub gaps_recovered_by_retransmit: u64,
    pub gaps_recovered_by_snapshot: u64,
    pub retransmit_requests: u64,
    pub snapshot_requests: u64,
    /// Why snapshots were asked for: a late join, reorder overflow, retransmission attempts
    /// exhausted, range no longer in the publisher's history, a snapshot that never came.
    pub snapshot_reasons: [u64; 5],
    pub snapshots_applied: u64,
    pub reorder_overflows: u64,
    /// Gap-tolerant mode: gaps skipped, and the messages in them, never applied.
    pub gaps_skipped: u64,
    pub messages_skipped: u64,
    pub bad_packets: u64,
    pub foreign_session_packets: u64,
    /// Publisher send stamp to `handle_packet`, nanoseconds.
    pub latency_ns: Histogram<u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            packets: 0,
            packets_a: 0,
            packets_b: 0,
            packets_retransmitted: 0,
            messages: 0,
            heartbeats: 0,
            duplicate_packets: 0,
            gaps_seen: 0,
            gaps_filled_by_other_line: 0,
            gaps_recovered_by_retransmit: 0,
            gaps_recovered_by_snapshot: 0,
            retransmit_requests: 0,
            snapshot_requests: 0,
            snapshot_reasons: [0; 5],
            snapshots_applied: 0,
            reorder_overflows: 0,
            gaps_skipped: 0,
            messages_skipped: 0,
            bad_packets: 0,
            foreign_session_packets: 0,
            latency_ns: Histogram::new_with_bounds(1, 60_000_000_000, 3)
                .expect("static histogram bounds are valid"),
        }
    }
}

impl Stats {
    /// Gaps not (yet) closed.
    pub fn gaps_open(&self) -> u64 {
        self.gaps_seen
            - self.gaps_recovered_by_retransmit
            - self.gaps_recovered_by_snapshot
            - self.gaps_skipped
    }
}

/// An open gap: messages from `next_seq` up to the horizon are missing.
#[derive(Debug, Clone, Copy)]
struct Gap {
    /// `next_seq` when the gap opened: once it moves, this gap is closed and any hole left is a
    /// new gap (so one hole's attempts never count against the next).
    from_seq: u64,
    since_ns: u64,
    requested_at_ns: Option<u64>,
    attempts: u32,
}

/// The subscriber core. Invariants: every message below `next_seq` has been applied exactly
/// once (or, gap-tolerant, counted skipped); `reorder` holds only packets that end at or after
/// `next_seq`, within both bounds.
#[derive(Debug)]
pub struct Subscriber {
    config: SubscriberConfig,
    session: Option<[u8; SESSION_LEN]>,
    /// Next sequence to apply; `None` until the first packet or snapshot decides it.
    next_seq: Option<u64>,
    /// One past the highest sequence known to exist.
    horizon: u64,
    reorder: BTreeMap<u64, Vec<u8>>,
    reorder_bytes: usize,
    gap: Option<Gap>,
    snapshot_requested_at_ns: Option<u64>,
    end_seq: Option<u64>,
    actions: VecDeque<Action>,
    books: Books,
    pub stats: Stats,
}

impl Subscriber {
    pub fn new(config: SubscriberConfig) -> Subscriber {
        assert!(config.reorder_packets_max >= 1);
        assert!(config.retransmit_attempts_max >= 1);
        Subscriber {
            config,
            session: None,
            next_seq: None,
            horizon: 1,
            reorder: BTreeMap::new(),
            reorder_bytes: 0,
            gap: None,
            snapshot_requested_at_ns: None,
            end_seq: None,
            actions: VecDeque::new(),
            books: Books::new(),
            stats: Stats::default(),
        }
    }

    pub fn books(&self) -> &Books {
        &self.books
    }

    pub fn next_seq(&self) -> Option<u64> {
        self.next_seq
    }

    /// True once the end-of-session marker arrived and every message before it was applied.
    pub fn is_complete(&self) -> bool {
        matches!((self.end_seq, self.next_seq), (Some(end), Some(next)) if next >= end)
    }

    /// True while a snapshot has been asked for and not yet applied.
    pub fn awaiting_snapshot(&self) -> bool {
        self.snapshot_requested_at_ns.is_some()
    }

    pub fn reorder_len(&self) -> usize {
        self.reorder.len()
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// One packet from line A, line B or a retransmission. A bad packet is counted and its
    /// error returned; the state is untouched.
    pub fn handle_packet(
        &mut self,
        now_ns: u64,
        line: Line,
        bytes: &[u8],
    ) -> Result<(), DecodeError> {
        let packet = match Packet::parse(bytes) {
            Ok(packet) => packet,
            Err(e) => {
                self.stats.bad_packets += 1;
                return Err(e);
            }
        };
        match self.session {
            None => self.session = Some(packet.header.session),
            Some(session) if session != packet.header.session => {
                self.stats.foreign_session_packets += 1;
                return Ok(());
            }
            Some(_) => {}
        }
        self.stats.packets += 1;
        match line {
            Line::A => self.stats.packets_a += 1,
            Line::B => self.stats.packets_b += 1,
            Line::Retransmit => self.stats.packets_retransmitted += 1,
        }
        let sent = packet.header.send_time_ns.get();
        if sent > 0 && now_ns >= sent {
            self.stats.latency_ns.saturating_record(now_ns - sent);
        }
        let seq = packet.seq();
        if packet.header.flags.get() & crate::proto::FLAG_RETRANSMIT_UNAVAILABLE != 0 {
            self.handle_retransmit_unavailable(now_ns);
            return Ok(());
        }
        match packet.kind {
            PacketKind::Heartbeat => {
                self.stats.heartbeats += 1;
                self.horizon = self.horizon.max(seq);
            }
            PacketKind::EndOfSession => {
                self.end_seq = Some(seq);
                self.horizon = self.horizon.max(seq);
            }
            PacketKind::Messages => {
                let end = seq + packet.count();
                self.horizon = self.horizon.max(end);
                if self.next_seq.is_none() && self.snapshot_requested_at_ns.is_none() {
                    if seq == 1 || self.config.join == Join::Retransmit {
                        self.next_seq = Some(1);
                    } else {
                        self.request_snapshot(now_ns, SnapshotReason::LateJoin);
                    }
                }
                match self.next_seq {
                    Some(next) if end <= next => self.stats.duplicate_packets += 1,
                    Some(next) if seq <= next => {
                        self.apply(&packet, next);
                        self.drain();
                    }
                    Some(next) if self.config.recovery == Recovery::GapTolerant => {
                        self.stats.gaps_seen += 1;
                        self.stats.gaps_skipped += 1;
                        self.stats.messages_skipped += seq - next;
                        self.next_seq = Some(seq);
                        self.apply(&packet, seq);
                    }
                    _ => self.buffer(now_ns, seq, bytes),
                }
            }
        }
        if self.config.recovery == Recovery::GapTolerant {
            if let Some(next) = self.next_seq {
                if next < self.horizon
                    && self.reorder.is_empty()
                    && packet.kind != PacketKind::Messages
                {
                    // A heartbeat or end of session says messages were lost: skip them too.
                    self.stats.gaps_seen += 1;
                    self.stats.gaps_skipped += 1;
                    self.stats.messages_skipped += self.horizon - next;
                    self.next_seq = Some(self.horizon);
                }
            }
        }
        self.update_gap(now_ns);
        Ok(())
    }

    /// Applies the messages of `packet` from sequence `from` on (all earlier ones are applied).
    fn apply(&mut self, packet: &Packet<'_>, from: u64) {
        let skip = usize::try_from(from - packet.seq()).expect("packets hold < 2^16 messages");
        let mut next = from;
        for (seq, message) in packet.messages().skip(skip) {
            debug_assert_eq!(seq, next);
            self.books.apply(&message);
            self.stats.messages += 1;
            next = seq + 1;
        }
        self.next_seq = Some(next);
    }

    /// Applies buffered packets that have become contiguous; drops those already covered.
    fn drain(&mut self) {
        while let Some(next) = self.next_seq {
            let Some(entry) = self.reorder.first_entry() else {
                break;
            };
            if *entry.key() > next {
                break;
            }
            let bytes = entry.remove();
            self.reorder_bytes -= bytes.len();
            let packet = Packet::parse(&bytes).expect("buffered packets were parsed");
            if packet.seq() + packet.count() <= next {
                self.stats.duplicate_packets += 1;
            } else {
                self.apply(&packet, next);
            }
        }
    }

    fn buffer(&mut self, now_ns: u64, seq: u64, bytes: &[u8]) {
        if self.reorder.contains_key(&seq) {
            self.stats.duplicate_packets += 1;
            return;
        }
        self.reorder.insert(seq, bytes.to_vec());
        self.reorder_bytes += bytes.len();
        let mut overflowed = false;
        while self.reorder.len() > self.config.reorder_packets_max
            || self.reorder_bytes > self.config.reorder_bytes_max
        {
            overflowed = true;
            let (_, oldest) = self
                .reorder
                .pop_first()
                .expect("over the bound, so not empty");
            self.reorder_bytes -= oldest.len();
        }
        if overflowed {
            self.stats.reorder_overflows += 1;
            if self.snapshot_requested_at_ns.is_none() {
                self.request_snapshot(now_ns, SnapshotReason::ReorderOverflow);
            }
        }
    }

    fn request_snapshot(&mut self, now_ns: u64, reason: SnapshotReason) {
        self.stats.snapshot_requests += 1;
        self.stats.snapshot_reasons[reason as usize] += 1;
        self.snapshot_requested_at_ns = Some(now_ns);
        self.actions.push_back(Action::Snapshot);
    }

    /// Opens, closes and escalates the gap record after a state change.
    fn update_gap(&mut self, now_ns: u64) {
        let Some(next) = self.next_seq else {
            return;
        };
        if self.config.recovery == Recovery::GapTolerant {
            return;
        }
        let missing = next < self.horizon;
        if let Some(gap) = self.gap {
            if gap.from_seq != next {
                self.close_gap(gap);
                if missing {
                    // The next hole was most likely asked for with this one: keep the request
                    // time so it is not asked again before the timeout, with fresh attempts.
                    if gap.requested_at_ns.is_some() {
                        self.stats.gaps_seen += 1;
                    }
                    self.gap = Some(Gap {
                        from_seq: next,
                        attempts: 0,
                        ..gap
                    });
                }
            }
        }
        match (self.gap, missing) {
            (None, true) => {
                // Counted in `gaps_seen` only if it outlives `gap_wait_ns` (a request goes out):
                // a hole the other line fills first is arbitration, not a gap.
                self.gap = Some(Gap {
                    from_seq: next,
                    since_ns: now_ns,
                    requested_at_ns: None,
                    attempts: 0,
                });
            }
            (Some(gap), false) => self.close_gap(gap),
            _ => {}
        }
        self.handle_timeout(now_ns);
    }

    fn close_gap(&mut self, gap: Gap) {
        self.gap = None;
        if gap.requested_at_ns.is_some() {
            self.stats.gaps_recovered_by_retransmit += 1;
        } else {
            self.stats.gaps_filled_by_other_line += 1;
        }
    }

    /// Timers: asks for retransmission once a gap has waited `gap_wait_ns`, again after each
    /// `retransmit_timeout_ns`, and for a snapshot after `retransmit_attempts_max` requests.
    pub fn handle_timeout(&mut self, now_ns: u64) {
        if let Some(asked) = self.snapshot_requested_at_ns {
            if now_ns.saturating_sub(asked) >= self.config.snapshot_timeout_ns {
                self.request_snapshot(now_ns, SnapshotReason::SnapshotTimeout);
            }
            return;
        }
        let (Some(next), Some(mut gap)) = (self.next_seq, self.gap) else {
            return;
        };
        let due = match gap.requested_at_ns {
            None => now_ns.saturating_sub(gap.since_ns) >= self.config.gap_wait_ns,
            Some(at) => now_ns.saturating_sub(at) >= self.config.retransmit_timeout_ns,
        };
        if !due {
            return;
        }
        if gap.attempts >= self.config.retransmit_attempts_max {
            self.request_snapshot(now_ns, SnapshotReason::RetransmitExhausted);
            return;
        }
        if gap.requested_at_ns.is_none() {
            self.stats.gaps_seen += 1;
        }
        gap.attempts += 1;
        gap.requested_at_ns = Some(now_ns);
        self.gap = Some(gap);
        // One request per hole, so every hole is asked for at once (bounded by the buffer).
        let mut cursor = next;
        let mut holes = 0;
        for (seq, bytes) in &self.reorder {
            if *seq > cursor && holes < RETRANSMIT_HOLES_MAX {
                holes += 1;
                self.stats.retransmit_requests += 1;
                self.actions.push_back(Action::Retransmit {
                    from_seq: cursor,
                    count: seq - cursor,
                });
            }
            let count = Packet::parse(bytes).map_or(0, |p| p.count());
            cursor = cursor.max(seq + count);
        }
        if cursor < self.horizon && holes < RETRANSMIT_HOLES_MAX {
            self.stats.retransmit_requests += 1;
            self.actions.push_back(Action::Retransmit {
                from_seq: cursor,
                count: self.horizon - cursor,
            });
        }
    }

    /// The retransmission server no longer holds the range: fall back to a snapshot.
    pub fn handle_retransmit_unavailable(&mut self, now_ns: u64) {
        if self.snapshot_requested_at_ns.is_none() {
            self.request_snapshot(now_ns, SnapshotReason::Unavailable);
        }
    }

    /// A snapshot (decoded message stream) replaces every book; buffered packets after it apply.
    pub fn handle_snapshot(
        &mut self,
        now_ns: u64,
        messages: &[Message],
    ) -> Result<(), SnapshotError> {
        let (books, last_seq) = Books::apply_snapshot(messages)?;
        if let Some(next) = self.next_seq {
            if last_seq < next {
                // Older than what we have: nothing to gain.
                self.snapshot_requested_at_ns = None;
                self.update_gap(now_ns);
                return Ok(());
            }
        }
        let had_gap = self.gap.is_some() || self.next_seq.is_none();
        let counted = self.gap.is_some_and(|g| g.requested_at_ns.is_some());
        let stats: Vec<_> = self
            .books
            .symbols()
            .iter()
            .map(|(l, b)| (*l, b.stats))
            .collect();
        self.books = books;
        // Statistics per symbol survive the swap; the books are the snapshot's.
        self.books.restore_stats(&stats);
        self.next_seq = Some(last_seq + 1);
        self.horizon = self.horizon.max(last_seq + 1);
        self.snapshot_requested_at_ns = None;
        self.stats.snapshots_applied += 1;
        if had_gap {
            if !counted {
                // A late join, or a hole never asked for: a gap the snapshot closed.
                self.stats.gaps_seen += 1;
            }
            self.gap = None;
            self.stats.gaps_recovered_by_snapshot += 1;
        }
        self.drain();
        self.update_gap(now_ns);
        Ok(())
    }
}
