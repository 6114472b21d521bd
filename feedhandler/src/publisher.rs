//! The publisher's sans-IO core: numbers messages, batches them into MTU-sized packets, keeps a
//! bounded history for retransmission and the books for snapshots. The transport ([`crate::net`])
//! sends what [`Publisher::poll_packet`] hands out and answers requests with
//! [`Publisher::handle_retransmit_request`] and [`Publisher::snapshot`].
//!
//! Sequences never reset within a session: a publisher taking over after an engine failover is
//! made with [`Publisher::resume`] at the sequence its predecessor reached (the engine knows it
//! from its journal).

use std::collections::VecDeque;

use crate::book::Books;
use crate::proto::{
    self, COUNT_END_OF_SESSION, COUNT_HEARTBEAT, HEADER_LEN, Message, PACKET_MESSAGES_MAX,
    SESSION_LEN,
};

/// Limits of a publisher.
#[derive(Debug, Clone, Copy)]
pub struct PublisherConfig {
    pub session: [u8; SESSION_LEN],
    /// Largest packet, bytes (UDP payload).
    pub mtu_payload: usize,
    /// Packets kept for retransmission; older ranges are answered "unavailable".
    pub history_packets_max: usize,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            session: proto::session_name("SEQUENT"),
            mtu_payload: proto::MTU_PAYLOAD_DEFAULT,
            history_packets_max: 4096,
        }
    }
}

/// One sealed packet in the history.
#[derive(Debug)]
struct Sealed {
    first_seq: u64,
    count: u64,
    bytes: Vec<u8>,
}

/// The answer to a retransmission request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retransmit {
    /// These many packets from the history were appended (they may overlap the range's ends).
    Packets(usize),
    /// The range starts before the oldest message kept: the subscriber needs a snapshot.
    Unavailable { oldest_seq: u64 },
}

/// The publisher core. Invariant: packets in `history` are contiguous and ascending, and the
/// last `unsent` of them have not yet been handed out by `poll_packet`.
#[derive(Debug)]
pub struct Publisher {
    config: PublisherConfig,
    next_seq: u64,
    building: Vec<u8>,
    building_count: u16,
    history: VecDeque<Sealed>,
    unsent: usize,
    control: Vec<u8>,
    control_pending: bool,
    books: Books,
    spare: Vec<Vec<u8>>,
}

impl Publisher {
    pub fn new(config: PublisherConfig) -> Publisher {
        Publisher::resume(config, 1, Books::new())
    }

    /// A publisher continuing a session at `next_seq` with the books as they stand (failover).
    pub fn resume(config: PublisherConfig, next_seq: u64, books: Books) -> Publisher {
        assert!(next_seq >= 1, "sequences start at 1");
        assert!(
            config.history_packets_max >= 2,
            "history holds the unsent packet and more"
        );
        assert!(
            config.mtu_payload >= HEADER_LEN + 64,
            "an MTU must hold a header and the largest message"
        );
        Publisher {
            config,
            next_seq,
            building: Vec::with_capacity(config.mtu_payload),
            building_count: 0,
            history: VecDeque::with_capacity(config.history_packets_max),
            unsent: 0,
            control: Vec::with_capacity(HEADER_LEN),
            control_pending: false,
            books,
            spare: Vec::new(),
        }
    }

    pub fn config(&self) -> &PublisherConfig {
        &self.config
    }

    /// The sequence the next message will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn books(&self) -> &Books {
        &self.books
    }

    /// Numbers one message and adds it to the packet being built; seals the packet first when
    /// the message would not fit. Call [`Publisher::poll_packet`] until `None` after each call.
    pub fn handle_message(&mut self, message: &Message) {
        if self.building_count > 0
            && (self.building.len() + message.block_len() > self.config.mtu_payload
                || self.building_count == PACKET_MESSAGES_MAX)
        {
            self.seal();
        }
        if self.building_count == 0 {
            let seq = self.next_seq;
            proto::encode_header(&mut self.building, self.config.session, seq, 0, 0);
        }
        message.encode_block(&mut self.building);
        self.building_count += 1;
        self.next_seq += 1;
        self.books.apply(message);
    }

    /// Seals the packet being built, if it holds anything (end of a batch, or idle).
    pub fn flush(&mut self) {
        if self.building_count > 0 {
            self.seal();
        }
    }

    fn seal(&mut self) {
        let count = self.building_count;
        proto::set_count(&mut self.building, count);
        let first_seq = self.next_seq - u64::from(count);
        if self.history.len() == self.config.history_packets_max {
            assert!(
                self.unsent < self.history.len(),
                "poll_packet after every handle_message"
            );
            let old = self.history.pop_front().expect("history is full");
            self.spare.push(old.bytes);
        }
        let mut next = self.spare.pop().unwrap_or_default();
        next.clear();
        let bytes = std::mem::replace(&mut self.building, next);
        self.history.push_back(Sealed {
            first_seq,
            count: u64::from(count),
            bytes,
        });
        self.unsent += 1;
        self.building_count = 0;
    }

    /// Queues a heartbeat (after flushing): tells idle subscribers the next sequence.
    pub fn heartbeat(&mut self) {
        self.flush();
        self.control_packet(COUNT_HEARTBEAT);
    }

    /// Queues the end-of-session marker (after flushing).
    pub fn end_session(&mut self) {
        self.flush();
        self.control_packet(COUNT_END_OF_SESSION);
    }

    fn control_packet(&mut self, count: u16) {
        proto::encode_header(
            &mut self.control,
            self.config.session,
            self.next_seq,
            count,
            0,
        );
        self.control_pending = true;
    }

    /// The next packet to send, stamped with `send_time_ns`: sealed data packets in order, then a
    /// queued heartbeat or end of session.
    pub fn poll_packet(&mut self, send_time_ns: u64) -> Option<&[u8]> {
        if self.unsent > 0 {
            let index = self.history.len() - self.unsent;
            self.unsent -= 1;
            let packet = &mut self.history[index].bytes;
            proto::stamp_send_time(packet, send_time_ns);
            return Some(packet);
        }
        if !self.control_pending {
            return None;
        }
        self.control_pending = false;
        proto::stamp_send_time(&mut self.control, send_time_ns);
        Some(&self.control)
    }

    /// Appends to `out` every kept packet overlapping `[from_seq, from_seq + count)`, stamped
    /// with `send_time_ns`; the subscriber skips what it already has.
    pub fn handle_retransmit_request(
        &mut self,
        from_seq: u64,
        count: u64,
        send_time_ns: u64,
        out: &mut Vec<Vec<u8>>,
    ) -> Retransmit {
        let sent = self.history.len() - self.unsent;
        let oldest_seq = self.history.front().map_or(self.next_seq, |p| p.first_seq);
        if from_seq < oldest_seq {
            return Retransmit::Unavailable { oldest_seq };
        }
        let end = from_seq.saturating_add(count);
        let mut packets = 0;
        for packet in self.history.iter_mut().take(sent) {
            if packet.first_seq + packet.count > from_seq && packet.first_seq < end {
                proto::stamp_send_time(&mut packet.bytes, send_time_ns);
                out.push(packet.bytes.clone());
                packets += 1;
            }
        }
        Retransmit::Packets(packets)
    }

    /// The snapshot of every book as a stream of message blocks, reflecting every message handed
    /// out so far (the packet being built is flushed first, so nothing is half-reflected).
    pub fn snapshot(&mut self, out: &mut Vec<u8>) -> u64 {
        self.flush();
        let last_seq = self.next_seq - 1;
        let mut messages = Vec::new();
        self.books.snapshot(last_seq, &mut messages);
        out.clear();
        for message in &messages {
            message.encode_block(out);
        }
        last_seq
    }
}
