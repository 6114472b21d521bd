//! The engine's deterministic core: sessions (login, sequence numbers, duplicates, gaps,
//! cancel-on-disconnect) in front of the venue (throttle and books). Sans-IO: the gateway turns
//! bytes into [`Input`]s, the sequencer gives each a timestamp, the journal records them, and
//! [`Core::apply`] turns each into [`Output`]s for the gateway to write. Replaying the journal's
//! inputs into a fresh core gives the same outputs and the same [`Core::state_digest`].
//!
//! Order ids: the venue sees `session << 32 | client_order_id`, so ids are unique across
//! sessions and the owner of every fill is known from the id alone.
//!
//! Resends (docs/order-entry.md, "Resending replies"): every order reply is also written to its
//! session's bounded history, connected or not, so the history is a function of the inputs like
//! everything else here. A login whose `next_expected` is below the session's next outbound
//! sequence is answered with the held replies from there (after a `ResendGap` for those no longer
//! held), as outputs of the login itself: the gateway releases them once the login is durable,
//! after the inputs that first produced them. Replay and snapshots rebuild the history, so
//! resends work across restarts; the gateway needs no state of its own for them.

use sequent_matching::{
    CancelReason, Command, Event, NewOrder, Reject, Side, Stp, SymbolId, Tif, Venue, VenueConfig,
};

use sequent_feed::proto::{self, Message};
use sequent_matching::snapshot::write_option;
use sequent_matching::{Problem, SnapshotError, SnapshotReader};

use crate::protocol::{
    CancelledBody, ClientMessage, Decoded, EngineMessage, FRAME_LEN_MAX, FillBody,
    LoginAcceptedBody, NO_RESEND, NewOrderBody, OrderReplyBody, ReplacedBody, ResendGapBody,
    SessionRejectBody, SessionRejectReason, decode_engine, encode_engine, symbol_text,
};

/// Sessions are `1..=SESSIONS_MAX`.
pub const SESSIONS_MAX: u32 = 1 << 16;

/// The most replies a session's resend history may hold. A login may ask for all of them at
/// once, and the gateway writes a whole burst into the connection's write buffer before it
/// flushes: 4,096 replies of at most 32 bytes are 128 KiB, half the buffer, so a resend never
/// cuts off a client that reads.
pub const RESEND_HISTORY_MAX: u32 = 4096;
/// The most replies held over all sessions (`sessions_max × resend_history`): 16 Mi entries of
/// 32 bytes are 512 MiB, allocated at start.
pub const RESEND_ENTRIES_MAX: u64 = 1 << 24;
// What the two bounds above and the configuration's documentation count per reply held.
const _: () = assert!(size_of::<EngineMessage>() <= 32);

/// What the core is built with; every table is sized here.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Sessions `1..=sessions_max` may log in.
    pub sessions_max: u32,
    /// The tradable symbols, in the order of their books (at most 8 ASCII bytes each).
    pub symbols: Vec<String>,
    /// The venue's capacity; `symbols_max` is set from `symbols`.
    pub venue: VenueConfig,
    /// Order replies each session keeps for resends on login, `0..=RESEND_HISTORY_MAX` (0: none;
    /// every resend request is answered with a gap).
    pub resend_history: u32,
}

/// A gateway connection's token: the gateway's own number for a TCP connection, carried in the
/// inputs so that replies find their way back. Part of the journaled input, so replay is exact.
pub type ConnectionId = u64;

/// One sequenced input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A decoded client frame from a connection.
    Frame {
        /// The connection it came on.
        connection: ConnectionId,
        /// The header's sequence.
        sequence: u32,
        /// The message.
        message: ClientMessage,
    },
    /// The connection closed (or was closed by the gateway).
    Disconnected {
        /// The connection.
        connection: ConnectionId,
    },
    /// End of the trading day: DAY orders expire.
    EndOfDay,
    /// The engine restarted: every session still logged in lost its connection (with
    /// cancel-on-disconnect where it asked for it).
    Restart,
}

/// One output, for the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Write this frame to this connection (dropped by the gateway if it has gone).
    Send {
        /// The connection.
        connection: ConnectionId,
        /// The header's sequence (the session's outbound sequence, or 0).
        sequence: u32,
        /// The message.
        message: EngineMessage,
    },
    /// Close this connection after writing what is queued for it.
    Disconnect {
        /// The connection.
        connection: ConnectionId,
    },
    /// A market-data message for the feed publisher (docs/feed-protocol.md). The core emits them
    /// so that the subscribers' books equal the venue's: every order that rests is added,
    /// executions and cancels reduce it, a replace that keeps priority is a partial cancel and one
    /// that loses it is a delete then an add.
    Market(sequent_feed::proto::Message),
    /// One execution, for the settlement ledger (the posting hook, `docs/engine-ledger-posting.md`);
    /// the gateway and the feed ignore it. Emitted once per execution, right after the feed's
    /// `OrderExecuted` of the same execution.
    Trade(Trade),
}

/// One execution as the settlement ledger needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trade {
    /// The execution's number: the feed's `match_no`, 1 for the venue's first execution, one more
    /// per execution, never reused (it is in the core's snapshot). The ledger's idempotency key.
    pub match_number: u64,
    /// The book (index into the configured symbols).
    pub symbol: SymbolId,
    /// The buying order's venue account.
    pub buyer_account: u32,
    /// The selling order's venue account.
    pub seller_account: u32,
    /// Price in ticks.
    pub price: i64,
    /// Quantity.
    pub qty: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Session {
    /// The connection it is logged in on.
    connection: Option<ConnectionId>,
    /// The next client sequence to apply.
    next_in: u32,
    /// The last outbound sequence used. Counts every order reply of the session, also while it
    /// has no connection, and goes on across logins and restarts (replay rebuilds it).
    last_out: u32,
    /// The oldest outbound sequence the resend history still holds; `last_out + 1` when it holds
    /// none. `last_out + 1 - resend_from <= resend_history`.
    resend_from: u32,
    cancel_on_disconnect: bool,
}

/// A session that never logged in.
const SESSION_INIT: Session = Session {
    connection: None,
    next_in: 1,
    last_out: 0,
    resend_from: 1,
    cancel_on_disconnect: false,
};

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreCounters {
    /// Sequenced client messages applied.
    pub applied: u64,
    /// Sequenced messages recognised as resends and not applied again.
    pub duplicates: u64,
    /// Session rejects sent.
    pub session_rejects: u64,
    /// Order replies resent on login.
    pub resent: u64,
    /// Resend requests that reached back past the history (each answered with a `ResendGap`).
    pub resend_gaps: u64,
    /// Order rejects, by reason: index `i` counts [`REJECT_REASONS`]`[i]`.
    pub rejects: [u64; REJECT_REASONS.len()],
}

/// Every order-reject reason, as (wire code, name), in the order of [`CoreCounters::rejects`].
pub const REJECT_REASONS: [(u16, &str); 15] = [
    (1, "duplicate_id"),
    (2, "unknown_order"),
    (3, "invalid"),
    (4, "post_only_would_cross"),
    (5, "order_pool_full"),
    (6, "price_levels_full"),
    (7, "id_table_full"),
    (101, "kill_switch"),
    (102, "rate_limit"),
    (103, "max_qty"),
    (104, "max_notional"),
    (105, "price_collar"),
    (106, "max_open_orders"),
    (107, "credit_limit"),
    (108, "no_reference_price"),
];

/// The deterministic core.
#[derive(Debug)]
pub struct Core {
    venue: Venue,
    symbols: Vec<[u8; 8]>,
    sessions: Vec<Session>,
    /// Connection → session, for the connections logged in (few: a linear scan is fine and
    /// deterministic). Preallocated to `sessions_max`.
    bound: Vec<(ConnectionId, u32)>,
    events: Vec<Event>,
    /// Orders an input may cancel, with their books: filled before the input (by the session
    /// mass cancel, a cancel's lookup, end of day), read by the market-data translation.
    scratch_ids: Vec<(u64, SymbolId)>,
    /// Executions numbered for the feed.
    match_number: u64,
    counters: CoreCounters,
    /// Replies kept per session for resends ([`CoreConfig::resend_history`]).
    resend_history: u32,
    /// The resend history: session `s` owns `history[(s - 1) × resend_history..][..resend_history]`
    /// and keeps its reply of outbound sequence `q` at offset `(q - 1) % resend_history`, valid
    /// for `resend_from <= q <= last_out`. Allocated at start; every reply is written here, sent or
    /// not, so that the history is a function of the inputs: replay and snapshots rebuild it.
    history: Vec<EngineMessage>,
}

impl Core {
    /// A core with every table allocated.
    ///
    /// # Panics
    /// When a symbol is empty or longer than 8 bytes, or there are more symbols than a venue
    /// holds: a configuration error caught at start-up.
    #[must_use]
    pub fn new(config: &CoreConfig) -> Self {
        let (symbols, venue_config) = Self::checked_config(config);
        Self::with_venue(config, symbols, Venue::new(venue_config))
    }

    /// The symbols as the wire carries them and the venue's configuration (`symbols_max` from
    /// the symbols), with the start-up checks of [`Core::new`].
    fn checked_config(config: &CoreConfig) -> (Vec<[u8; 8]>, VenueConfig) {
        assert!(config.sessions_max >= 1 && config.sessions_max <= SESSIONS_MAX);
        assert!(config.resend_history <= RESEND_HISTORY_MAX);
        assert!(
            u64::from(config.sessions_max) * u64::from(config.resend_history) <= RESEND_ENTRIES_MAX
        );
        let symbols: Vec<[u8; 8]> = config
            .symbols
            .iter()
            .map(|s| {
                crate::protocol::symbol_bytes(s)
                    .unwrap_or_else(|| panic!("symbol {s:?} must be 1 to 8 bytes"))
            })
            .collect();
        let mut venue_config = config.venue;
        venue_config.symbols_max =
            SymbolId::try_from(symbols.len().max(1)).expect("at most 65535 symbols");
        (symbols, venue_config)
    }

    fn with_venue(config: &CoreConfig, symbols: Vec<[u8; 8]>, venue: Venue) -> Self {
        let orders_max = venue.config().orders_max as usize;
        Self {
            venue,
            symbols,
            sessions: vec![SESSION_INIT; config.sessions_max as usize + 1],
            bound: Vec::with_capacity(config.sessions_max as usize),
            events: Vec::with_capacity(1024),
            scratch_ids: Vec::with_capacity(orders_max),
            counters: CoreCounters::default(),
            match_number: 0,
            resend_history: config.resend_history,
            history: vec![
                EngineMessage::Heartbeat;
                config.sessions_max as usize * config.resend_history as usize
            ],
        }
    }

    /// Counters since start (replay included).
    #[must_use]
    pub fn counters(&self) -> CoreCounters {
        self.counters
    }

    /// Executions so far: the number of the last one (0 before the first).
    #[must_use]
    pub fn match_number(&self) -> u64 {
        self.match_number
    }

    /// The venue (for dumps and digests).
    #[must_use]
    pub fn venue(&self) -> &Venue {
        &self.venue
    }

    /// The next client sequence the session's messages must carry.
    #[must_use]
    pub fn next_expected(&self, session: u32) -> Option<u32> {
        self.sessions.get(session as usize).map(|s| s.next_in)
    }

    /// The order replies of `session` from outbound sequence `from` to its last, as the resend
    /// history holds them (empty when it holds none of them): what a login with
    /// `next_expected = from` is resent.
    pub fn resendable(
        &self,
        session: u32,
        from: u32,
    ) -> impl Iterator<Item = (u32, EngineMessage)> {
        let (start, end) = self.sessions.get(session as usize).map_or((1, 1), |s| {
            (from.max(s.resend_from), s.last_out.saturating_add(1))
        });
        (start..end)
            .map(move |sequence| (sequence, self.history[self.history_slot(session, sequence)]))
    }

    fn history_slot(&self, session: u32, sequence: u32) -> usize {
        debug_assert!(session >= 1 && sequence >= 1 && self.resend_history > 0);
        (session as usize - 1) * self.resend_history as usize
            + (sequence as usize - 1) % self.resend_history as usize
    }

    /// Keeps the session's reply of outbound `sequence` (its new `last_out`) in the history,
    /// forgetting the oldest when the history is full.
    fn record_reply(&mut self, session: u32, sequence: u32, message: EngineMessage) {
        let state = self.sessions[session as usize];
        assert_eq!(state.last_out, sequence, "replies are recorded in order");
        if self.resend_history == 0 {
            self.sessions[session as usize].resend_from = sequence + 1;
            return;
        }
        let slot = self.history_slot(session, sequence);
        self.history[slot] = message;
        let held = sequence + 1 - state.resend_from;
        if held > self.resend_history {
            self.sessions[session as usize].resend_from = sequence + 1 - self.resend_history;
        }
    }

    /// FNV-1a over the venue's digest and every session's sequences and login state (the resend
    /// history is a log of past outputs, not state the next input depends on for anything but
    /// resends: it is left out, and the resend tests compare it byte for byte instead).
    #[must_use]
    pub fn state_digest(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut write = |bytes: &[u8]| {
            for &b in bytes {
                hash ^= u64::from(b);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        };
        write(&self.venue.state_digest().to_le_bytes());
        for (id, session) in self.sessions.iter().enumerate() {
            if session.next_in == 1 && session.last_out == 0 && session.connection.is_none() {
                continue;
            }
            write(&(id as u64).to_le_bytes());
            write(&session.next_in.to_le_bytes());
            write(&session.last_out.to_le_bytes());
            write(&session.connection.map_or(u64::MAX, |c| c).to_le_bytes());
            write(&[u8::from(session.cancel_on_disconnect)]);
        }
        hash
    }

    fn session_of(&self, connection: ConnectionId) -> Option<u32> {
        self.bound
            .iter()
            .find(|(c, _)| *c == connection)
            .map(|(_, s)| *s)
    }

    /// Applies one input at sequenced time `now` and appends what to send to `out`.
    pub fn apply(&mut self, now: u64, input: &Input, out: &mut Vec<Output>) {
        match *input {
            Input::Frame {
                connection,
                sequence,
                message,
            } => self.handle_frame(now, connection, sequence, &message, out),
            Input::Disconnected { connection } => self.handle_disconnect(now, connection, out),
            Input::EndOfDay => {
                self.events.clear();
                // The DAY orders about to expire, with their books, for the feed.
                self.scratch_ids.clear();
                for symbol in 0..self.symbols.len() as SymbolId {
                    for side in [Side::Buy, Side::Sell] {
                        for resting in self.venue.resting(symbol, side) {
                            if resting.tif == Tif::Day {
                                self.scratch_ids.push((resting.id, symbol));
                            }
                        }
                    }
                }
                self.venue.apply(now, &Command::EndOfDay, &mut self.events);
                self.route_events(out);
                self.market_data(now, None, None, None, out);
            }
            Input::Restart => {
                // Oldest login first: deterministic.
                while let Some(&(connection, _)) = self.bound.first() {
                    self.handle_disconnect(now, connection, out);
                }
                // The feed's symbol directory, once per start.
                for (index, symbol) in self.symbols.iter().enumerate() {
                    out.push(Output::Market(Message::SymbolDirectory(
                        proto::SymbolDirectory {
                            time_ns: now.into(),
                            locate: locate(index as SymbolId).into(),
                            symbol: feed_symbol(symbol),
                        },
                    )));
                }
            }
        }
    }

    fn session_reject(
        &mut self,
        connection: ConnectionId,
        reason: SessionRejectReason,
        ref_sequence: u32,
        out: &mut Vec<Output>,
    ) {
        self.counters.session_rejects += 1;
        out.push(Output::Send {
            connection,
            sequence: 0,
            message: EngineMessage::SessionReject(SessionRejectBody {
                reason: (reason as u16).into(),
                reserved: 0.into(),
                ref_sequence: ref_sequence.into(),
            }),
        });
    }

    fn handle_frame(
        &mut self,
        now: u64,
        connection: ConnectionId,
        sequence: u32,
        message: &ClientMessage,
        out: &mut Vec<Output>,
    ) {
        if let ClientMessage::Login(login) = message {
            let session = login.session.get();
            if session == 0 || session as usize >= self.sessions.len() {
                self.session_reject(connection, SessionRejectReason::UnknownSession, 0, out);
                out.push(Output::Disconnect { connection });
                return;
            }
            if self.sessions[session as usize].connection.is_some()
                || self.session_of(connection).is_some()
            {
                self.session_reject(connection, SessionRejectReason::AlreadyLoggedIn, 0, out);
                out.push(Output::Disconnect { connection });
                return;
            }
            let next_out = self.sessions[session as usize].last_out.saturating_add(1);
            let wanted = login.next_expected.get();
            if wanted > next_out {
                // The client claims replies this session never sent: its state is not ours.
                self.session_reject(
                    connection,
                    SessionRejectReason::NextExpectedTooHigh,
                    next_out,
                    out,
                );
                out.push(Output::Disconnect { connection });
                return;
            }
            let state = &mut self.sessions[session as usize];
            state.connection = Some(connection);
            state.cancel_on_disconnect = login.flags & 1 != 0;
            self.bound.push((connection, session));
            out.push(Output::Send {
                connection,
                sequence: 0,
                message: EngineMessage::LoginAccepted(LoginAcceptedBody {
                    session: session.into(),
                    next_expected: state.next_in.into(),
                }),
            });
            if wanted != NO_RESEND && wanted < next_out {
                self.resend(connection, session, wanted, out);
            }
            return;
        }
        let Some(session) = self.session_of(connection) else {
            self.session_reject(connection, SessionRejectReason::NotLoggedIn, sequence, out);
            return;
        };
        match message {
            ClientMessage::Heartbeat => {
                out.push(Output::Send {
                    connection,
                    sequence: 0,
                    message: EngineMessage::Heartbeat,
                });
                return;
            }
            ClientMessage::Logout => {
                self.handle_disconnect(now, connection, out);
                out.push(Output::Disconnect { connection });
                return;
            }
            _ => {}
        }
        let state = &mut self.sessions[session as usize];
        if sequence < state.next_in {
            // A resend after a reconnect: already applied, never again.
            self.counters.duplicates += 1;
            return;
        }
        if sequence > state.next_in {
            self.session_reject(connection, SessionRejectReason::SequenceGap, sequence, out);
            out.push(Output::Disconnect { connection });
            return;
        }
        state.next_in += 1;
        self.counters.applied += 1;
        self.events.clear();
        // What the market-data translation needs to know from before the input.
        self.scratch_ids.clear();
        let (incoming, before, book) = match message {
            ClientMessage::NewOrder(order) => (
                Some(order_id(session, order.client_order_id.get())),
                None,
                self.symbol_id(&order.symbol),
            ),
            ClientMessage::Replace(replace) => {
                let id = order_id(session, replace.client_order_id.get());
                let before = self.venue.resting_order(id);
                (Some(id), before, before.map(|(symbol, _, _)| symbol))
            }
            ClientMessage::Cancel(cancel) => {
                let id = order_id(session, cancel.client_order_id.get());
                if let Some((symbol, _, _)) = self.venue.resting_order(id) {
                    self.scratch_ids.push((id, symbol));
                }
                (None, None, None)
            }
            _ => (None, None, None),
        };
        match message {
            ClientMessage::NewOrder(order) => {
                let Some(command) = self.new_order(session, order) else {
                    self.reply_rejected(session, order.client_order_id.get(), Reject::Invalid, out);
                    return;
                };
                self.venue.apply(now, &command, &mut self.events);
            }
            ClientMessage::Cancel(cancel) => {
                let id = order_id(session, cancel.client_order_id.get());
                self.venue
                    .apply(now, &Command::Cancel { id }, &mut self.events);
            }
            ClientMessage::Replace(replace) => {
                let id = order_id(session, replace.client_order_id.get());
                let price = (replace.flags & 1 != 0).then(|| replace.price.get());
                self.venue.apply(
                    now,
                    &Command::Replace {
                        id,
                        qty: replace.qty.get(),
                        price,
                    },
                    &mut self.events,
                );
            }
            ClientMessage::MassCancel(mass) => {
                let account = (mass.flags & 1 != 0).then(|| mass.account.get());
                let symbol = if mass.flags & 2 != 0 {
                    match self.symbol_id(&mass.symbol) {
                        Some(symbol) => Some(symbol),
                        None => return, // no book, so no orders of it
                    }
                } else {
                    None
                };
                self.cancel_session_orders(now, session, account, symbol);
            }
            ClientMessage::Login(_) | ClientMessage::Heartbeat | ClientMessage::Logout => {}
        }
        self.route_events(out);
        self.market_data(now, incoming, before, book, out);
    }

    /// Answers a login that asked for the replies from outbound sequence `from` on: a gap for
    /// those the history no longer holds, then the held ones, in order, with their sequences.
    /// They come out of the login's input, so the gateway releases them after it (and so after
    /// the inputs that first produced them) is durable, before any later reply of the session.
    fn resend(&mut self, connection: ConnectionId, session: u32, from: u32, out: &mut Vec<Output>) {
        let held_from = self.sessions[session as usize].resend_from;
        if from < held_from {
            self.counters.resend_gaps += 1;
            out.push(Output::Send {
                connection,
                sequence: 0,
                message: EngineMessage::ResendGap(ResendGapBody {
                    from: from.into(),
                    to: (held_from - 1).into(),
                }),
            });
        }
        let before = out.len();
        for (sequence, message) in self.resendable(session, from) {
            out.push(Output::Send {
                connection,
                sequence,
                message,
            });
        }
        self.counters.resent += (out.len() - before) as u64;
    }

    fn handle_disconnect(&mut self, now: u64, connection: ConnectionId, out: &mut Vec<Output>) {
        let Some(position) = self.bound.iter().position(|(c, _)| *c == connection) else {
            return;
        };
        let (_, session) = self.bound.remove(position);
        let state = &mut self.sessions[session as usize];
        state.connection = None;
        if state.cancel_on_disconnect {
            self.events.clear();
            self.cancel_session_orders(now, session, None, None);
            self.route_events(out);
            self.market_data(now, None, None, None, out);
        }
    }

    fn symbol_id(&self, symbol: &[u8; 8]) -> Option<SymbolId> {
        let text = symbol_text(symbol);
        self.symbols
            .iter()
            .position(|s| symbol_text(s) == text)
            .and_then(|i| SymbolId::try_from(i).ok())
    }

    fn new_order(&self, session: u32, order: &NewOrderBody) -> Option<Command> {
        let symbol = self.symbol_id(&order.symbol)?;
        let stp = match (order.flags >> 1) & 0b11 {
            0 => Stp::Off,
            1 => Stp::CancelNewest,
            2 => Stp::CancelOldest,
            _ => Stp::CancelBoth,
        };
        Some(Command::New(NewOrder {
            id: order_id(session, order.client_order_id.get()),
            account: order.account.get(),
            symbol,
            side: if order.side == b'B' {
                Side::Buy
            } else {
                Side::Sell
            },
            price: (order.order_type == b'L').then(|| order.price.get()),
            qty: order.qty.get(),
            tif: match order.tif {
                b'I' => Tif::Ioc,
                b'F' => Tif::Fok,
                b'D' => Tif::Day,
                _ => Tif::Gtc,
            },
            post_only: order.flags & 1 != 0,
            stp,
        }))
    }

    /// Cancels the session's resting orders (of one account and/or symbol when given), oldest
    /// book first, best price first: deterministic.
    fn cancel_session_orders(
        &mut self,
        now: u64,
        session: u32,
        account: Option<u32>,
        symbol: Option<SymbolId>,
    ) {
        self.scratch_ids.clear();
        for s in 0..self.symbols.len() {
            let s = s as SymbolId;
            if symbol.is_some_and(|only| only != s) {
                continue;
            }
            for side in [Side::Buy, Side::Sell] {
                for resting in self.venue.resting(s, side) {
                    if resting.id >> 32 == u64::from(session)
                        && account.is_none_or(|a| a == resting.account)
                    {
                        self.scratch_ids.push((resting.id, s));
                    }
                }
            }
        }
        for i in 0..self.scratch_ids.len() {
            let (id, _) = self.scratch_ids[i];
            self.venue
                .apply(now, &Command::Cancel { id }, &mut self.events);
        }
    }

    fn next_out(&mut self, session: u32) -> (Option<ConnectionId>, u32) {
        let state = &mut self.sessions[session as usize];
        state.last_out += 1;
        (state.connection, state.last_out)
    }

    fn send_to_owner(&mut self, id: u64, message: EngineMessage, out: &mut Vec<Output>) {
        let session = (id >> 32) as u32;
        if session as usize >= self.sessions.len() {
            return;
        }
        let (connection, sequence) = self.next_out(session);
        self.record_reply(session, sequence, message);
        if let Some(connection) = connection {
            out.push(Output::Send {
                connection,
                sequence,
                message,
            });
        }
    }

    fn reply_rejected(
        &mut self,
        session: u32,
        client_order_id: u32,
        reason: Reject,
        out: &mut Vec<Output>,
    ) {
        let code = reject_code(reason);
        if let Some(i) = REJECT_REASONS.iter().position(|(c, _)| *c == code) {
            self.counters.rejects[i] += 1;
        }
        self.send_to_owner(
            order_id(session, client_order_id),
            EngineMessage::Rejected(OrderReplyBody {
                client_order_id: client_order_id.into(),
                reason: code.into(),
                reserved: 0.into(),
            }),
            out,
        );
    }

    /// Turns the venue's events of one input into feed messages. `incoming` is the order the input
    /// brought in (a new order, or a replaced one re-entering), which was not on the feed's book
    /// before; `before` is a replaced order's state before the input.
    fn market_data(
        &mut self,
        now: u64,
        incoming: Option<u64>,
        before: Option<(SymbolId, Side, sequent_matching::Resting)>,
        book: Option<SymbolId>,
        out: &mut Vec<Output>,
    ) {
        let time_ns = now.into();
        let mut priority_kept = false;
        if let (Some(id), Some((symbol, _, old))) = (incoming, before) {
            match self.venue.resting_order(id) {
                // Same price, no larger: the order kept its place; the feed sees a partial cancel.
                Some((_, _, new))
                    if new.price == old.price
                        && new.qty <= old.qty
                        && !self
                            .events
                            .iter()
                            .any(|e| matches!(e, Event::Trade { taker, .. } if *taker == id)) =>
                {
                    priority_kept = true;
                    if new.qty < old.qty {
                        out.push(Output::Market(Message::OrderCancelled(
                            proto::OrderCancelled {
                                time_ns,
                                order_ref: id.into(),
                                locate: locate(symbol).into(),
                                shares: clamp_shares(old.qty - new.qty).into(),
                            },
                        )));
                    }
                }
                // Anything else took it off the book before it re-entered.
                _ if self
                    .events
                    .iter()
                    .any(|e| matches!(e, Event::Replaced { id: r, .. } if *r == id)) =>
                {
                    out.push(Output::Market(Message::OrderDeleted(proto::OrderDeleted {
                        time_ns,
                        order_ref: id.into(),
                        locate: locate(symbol).into(),
                    })));
                }
                _ => priority_kept = true, // rejected: the order is as it was
            }
        }
        for i in 0..self.events.len() {
            match self.events[i] {
                Event::Trade {
                    symbol,
                    maker,
                    taker_account,
                    maker_account,
                    taker_side,
                    price,
                    qty,
                    ..
                } => {
                    self.match_number += 1;
                    out.push(Output::Market(Message::OrderExecuted(
                        proto::OrderExecuted {
                            time_ns,
                            order_ref: maker.into(),
                            locate: locate(symbol).into(),
                            shares: clamp_shares(qty).into(),
                            match_no: self.match_number.into(),
                            price: price.into(),
                        },
                    )));
                    let (buyer_account, seller_account) = match taker_side {
                        Side::Buy => (taker_account, maker_account),
                        Side::Sell => (maker_account, taker_account),
                    };
                    out.push(Output::Trade(Trade {
                        match_number: self.match_number,
                        symbol,
                        buyer_account,
                        seller_account,
                        price,
                        qty,
                    }));
                }
                // Only orders that were on the feed's book: not the incoming one's remainder.
                Event::Cancelled { id, qty, .. } if Some(id) != incoming => {
                    // A resting order the input named or the core listed before the input; else a
                    // resting order of the incoming order's book (self-trade prevention).
                    let symbol = self
                        .scratch_ids
                        .iter()
                        .find(|(r, _)| *r == id)
                        .map(|(_, s)| *s)
                        .or(book);
                    if let Some(symbol) = symbol {
                        out.push(Output::Market(Message::OrderCancelled(
                            proto::OrderCancelled {
                                time_ns,
                                order_ref: id.into(),
                                locate: locate(symbol).into(),
                                shares: clamp_shares(qty).into(),
                            },
                        )));
                    }
                }
                _ => {}
            }
        }
        if let Some(id) = incoming
            && !priority_kept
            && let Some((symbol, side, order)) = self.venue.resting_order(id)
        {
            out.push(Output::Market(Message::AddOrder(proto::AddOrder {
                time_ns,
                order_ref: id.into(),
                locate: locate(symbol).into(),
                side: if side == Side::Buy { b'B' } else { b'S' },
                shares: clamp_shares(order.qty).into(),
                price: order.price.into(),
            })));
        }
    }

    /// Turns the venue's events into replies to the sessions that own the orders.
    fn route_events(&mut self, out: &mut Vec<Output>) {
        for i in 0..self.events.len() {
            let event = self.events[i];
            match event {
                Event::Accepted { id } => self.send_to_owner(
                    id,
                    EngineMessage::Accepted(OrderReplyBody {
                        client_order_id: (id as u32).into(),
                        reason: 0.into(),
                        reserved: 0.into(),
                    }),
                    out,
                ),
                Event::Rejected { id, reason } => {
                    self.reply_rejected((id >> 32) as u32, id as u32, reason, out);
                }
                Event::Trade {
                    taker,
                    maker,
                    price,
                    qty,
                    ..
                } => {
                    for (id, liquidity) in [(taker, b'R'), (maker, b'A')] {
                        self.send_to_owner(
                            id,
                            EngineMessage::Fill(FillBody {
                                client_order_id: (id as u32).into(),
                                liquidity,
                                reserved: [0; 3],
                                price: price.into(),
                                qty: qty.into(),
                            }),
                            out,
                        );
                    }
                }
                Event::Cancelled { id, qty, reason } => self.send_to_owner(
                    id,
                    EngineMessage::Cancelled(CancelledBody {
                        client_order_id: (id as u32).into(),
                        reason: cancel_code(reason),
                        reserved: [0; 3],
                        qty: qty.into(),
                    }),
                    out,
                ),
                Event::Replaced { id, price, qty } => self.send_to_owner(
                    id,
                    EngineMessage::Replaced(ReplacedBody {
                        client_order_id: (id as u32).into(),
                        reserved: 0.into(),
                        price: price.into(),
                        qty: qty.into(),
                    }),
                    out,
                ),
                Event::Alert(_) => {}
            }
        }
    }
}

/// First 8 bytes of a core snapshot.
pub const CORE_SNAPSHOT_MAGIC: [u8; 8] = *b"SQCORE\0\0";
/// The core snapshot's format version (`docs/engine-snapshot.md`). A reader refuses a newer one.
/// Version 2 added the resend history (section 13); version 1 is still read (its sessions hold
/// no history).
pub const CORE_SNAPSHOT_VERSION: u32 = 2;

/// Snapshots of the whole core, so that recovery is a snapshot plus the journal's suffix
/// (`docs/engine-snapshot.md`). What the core keeps between inputs is all here: the venue
/// (physical state), the sessions, the connection bindings in login order, the feed's match
/// number, the counters and the resend history. The per-input scratch (`events`, `scratch_ids`) is cleared before
/// every use and is not saved.
impl Core {
    /// Appends the snapshot to `out`: magic, version, the configuration it was built with (to be
    /// refused under another), the venue, the match number, the counters, the sessions that ever
    /// logged in and the bindings. Runs only when called; [`Core::apply`] is unchanged.
    pub fn write_snapshot(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&CORE_SNAPSHOT_MAGIC);
        out.extend_from_slice(&CORE_SNAPSHOT_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.sessions.len() as u32 - 1).to_le_bytes());
        out.extend_from_slice(&(self.symbols.len() as u32).to_le_bytes());
        for symbol in &self.symbols {
            out.extend_from_slice(symbol);
        }
        self.venue.write_snapshot(out);
        out.extend_from_slice(&self.match_number.to_le_bytes());
        let c = &self.counters;
        for value in [
            c.applied,
            c.duplicates,
            c.session_rejects,
            c.resent,
            c.resend_gaps,
        ] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out.extend_from_slice(&(c.rejects.len() as u32).to_le_bytes());
        for value in c.rejects {
            out.extend_from_slice(&value.to_le_bytes());
        }
        let touched = || {
            self.sessions
                .iter()
                .enumerate()
                .filter(|(_, s)| **s != SESSION_INIT)
        };
        out.extend_from_slice(&(touched().count() as u32).to_le_bytes());
        for (index, session) in touched() {
            out.extend_from_slice(&(index as u32).to_le_bytes());
            write_option(out, session.connection, |out, c| {
                out.extend_from_slice(&c.to_le_bytes());
            });
            out.extend_from_slice(&session.next_in.to_le_bytes());
            out.extend_from_slice(&session.last_out.to_le_bytes());
            out.push(u8::from(session.cancel_on_disconnect));
        }
        out.extend_from_slice(&(self.bound.len() as u32).to_le_bytes());
        for (connection, session) in &self.bound {
            out.extend_from_slice(&connection.to_le_bytes());
            out.extend_from_slice(&session.to_le_bytes());
        }
        // The resend history: per session of the sessions section, in its order, the replies
        // held, oldest first, each as its wire frame (sequence in the header).
        let mut frame = [0u8; FRAME_LEN_MAX];
        for (index, session) in touched() {
            let held = session.last_out + 1 - session.resend_from;
            out.extend_from_slice(&held.to_le_bytes());
            for (sequence, message) in self.resendable(index as u32, session.resend_from) {
                let len = encode_engine(&mut frame, sequence, &message);
                out.extend_from_slice(&frame[..len]);
            }
        }
    }

    /// Restores a core built for `config` from a whole snapshot of [`Core::write_snapshot`].
    /// Refuses, with the field and byte offset named and never a panic: another magic, a newer
    /// version, another configuration (sessions, symbols, any venue capacity), truncated or
    /// trailing bytes, and anything inconsistent (see [`Venue::read_snapshot`] for the venue's
    /// checks; here: sessions in range and ascending, bindings that match the sessions'
    /// connections one to one).
    ///
    /// # Panics
    /// Only where [`Core::new`] does: on a `config` no core can be built with.
    pub fn read_snapshot(config: &CoreConfig, bytes: &[u8]) -> Result<Self, SnapshotError> {
        let (symbols, venue_config) = Self::checked_config(config);
        let mut r = SnapshotReader::new(bytes);
        if r.bytes(CORE_SNAPSHOT_MAGIC.len(), "core.magic", None)? != CORE_SNAPSHOT_MAGIC {
            return Err(SnapshotError::new(0, "core.magic", None, Problem::BadMagic));
        }
        let at = r.position();
        let version = r.u32("core.version", None)?;
        if version > CORE_SNAPSHOT_VERSION {
            return Err(SnapshotError::new(
                at,
                "core.version",
                None,
                Problem::NewerVersion {
                    found: version,
                    supported: CORE_SNAPSHOT_VERSION,
                },
            ));
        }
        if version == 0 {
            return Err(SnapshotError::invalid(
                at,
                "core.version",
                None,
                "version 0 was never written",
            ));
        }
        r.expect_u32("core.sessions_max", config.sessions_max)?;
        r.expect_u32("core.symbols", symbols.len() as u32)?;
        for (index, symbol) in symbols.iter().enumerate() {
            let at = r.position();
            if r.bytes(8, "core.symbol", Some(index as u64))? != symbol {
                return Err(SnapshotError::invalid(
                    at,
                    "core.symbol",
                    Some(index as u64),
                    "differs from the configured symbol",
                ));
            }
        }
        let venue = Venue::read_snapshot_from(&mut r, venue_config)?;
        let mut core = Self::with_venue(config, symbols, venue);
        core.match_number = r.u64("core.match_number", None)?;
        core.counters.applied = r.u64("core.counters.applied", None)?;
        core.counters.duplicates = r.u64("core.counters.duplicates", None)?;
        core.counters.session_rejects = r.u64("core.counters.session_rejects", None)?;
        if version >= 2 {
            core.counters.resent = r.u64("core.counters.resent", None)?;
            core.counters.resend_gaps = r.u64("core.counters.resend_gaps", None)?;
        }
        r.expect_u32("core.counters.rejects", REJECT_REASONS.len() as u32)?;
        for (index, value) in core.counters.rejects.iter_mut().enumerate() {
            *value = r.u64("core.counters.rejects", Some(index as u64))?;
        }

        let at = r.position();
        let touched = r.u32("core.sessions", None)?;
        if touched as usize > core.sessions.len() {
            return Err(SnapshotError::invalid(
                at,
                "core.sessions",
                None,
                "more sessions than sessions_max",
            ));
        }
        // Sessions are numbered from 1: slot 0 is never touched (a flipped index of 0 would
        // reach the resend history as session 0, which owns no part of it).
        let mut next_index = 1u32;
        let mut connected = 0usize;
        for _ in 0..touched {
            let at = r.position();
            let index = r.u32("core.session.index", None)?;
            if index < next_index || index as usize >= core.sessions.len() {
                return Err(SnapshotError::invalid(
                    at,
                    "core.session.index",
                    Some(u64::from(index)),
                    "sessions must ascend from 1 and be at most sessions_max",
                ));
            }
            next_index = index + 1;
            let i = Some(u64::from(index));
            let connection = r.option("core.session.connection", i, |r| {
                r.u64("core.session.connection", i)
            })?;
            let next_in = r.u32("core.session.next_in", i)?;
            let last_out = r.u32("core.session.last_out", i)?;
            let session = Session {
                connection,
                next_in,
                last_out,
                // Holds nothing until the history section says otherwise.
                resend_from: last_out.saturating_add(1),
                cancel_on_disconnect: r.bool("core.session.cancel_on_disconnect", i)?,
            };
            if session == SESSION_INIT {
                return Err(SnapshotError::invalid(
                    at,
                    "core.session",
                    i,
                    "a session in its initial state is not written",
                ));
            }
            connected += usize::from(session.connection.is_some());
            core.sessions[index as usize] = session;
        }

        let at = r.position();
        let bound = r.u32("core.bound", None)? as usize;
        if bound != connected {
            return Err(SnapshotError::invalid(
                at,
                "core.bound",
                None,
                "differs from the number of sessions with a connection",
            ));
        }
        for index in 0..bound {
            let at = r.position();
            let i = Some(index as u64);
            let connection = r.u64("core.bound.connection", i)?;
            let session = r.u32("core.bound.session", i)?;
            let owns = session != 0
                && core
                    .sessions
                    .get(session as usize)
                    .is_some_and(|s| s.connection == Some(connection));
            if !owns
                || core
                    .bound
                    .iter()
                    .any(|(c, s)| *c == connection || *s == session)
            {
                return Err(SnapshotError::invalid(
                    at,
                    "core.bound",
                    i,
                    "not a logged-in session on this connection, or bound twice",
                ));
            }
            core.bound.push((connection, session));
        }
        if version >= 2 {
            core.read_history(&mut r)?;
        }
        r.finish("core.end")?;
        Ok(core)
    }

    /// Section 13: the resend history of every session of section 11. Each reply must be an
    /// order reply frame and the sequences must run up to the session's `last_out` without a
    /// hole. Under a smaller `resend_history` than the writer's, the newest are kept.
    fn read_history(&mut self, r: &mut SnapshotReader<'_>) -> Result<(), SnapshotError> {
        for index in 0..self.sessions.len() as u32 {
            let state = self.sessions[index as usize];
            if state == SESSION_INIT {
                continue;
            }
            let i = Some(u64::from(index));
            let at = r.position();
            let held = r.u32("core.history.count", i)?;
            if held > state.last_out {
                return Err(SnapshotError::invalid(
                    at,
                    "core.history.count",
                    i,
                    "more replies than the session's last_out",
                ));
            }
            let first = state.last_out + 1 - held;
            let keep_from = first.max((state.last_out + 1).saturating_sub(self.resend_history));
            self.sessions[index as usize].resend_from = keep_from;
            for sequence in first..=state.last_out {
                let at = r.position();
                let header = r.bytes(crate::protocol::HEADER_LEN, "core.history.frame", i)?;
                let len = usize::from(u16::from_le_bytes([header[0], header[1]]));
                let mut frame = [0u8; FRAME_LEN_MAX];
                frame[..header.len()].copy_from_slice(header);
                if !(crate::protocol::HEADER_LEN..=FRAME_LEN_MAX).contains(&len) {
                    return Err(SnapshotError::invalid(
                        at,
                        "core.history.frame",
                        i,
                        "frame length out of range",
                    ));
                }
                let body = r.bytes(len - crate::protocol::HEADER_LEN, "core.history.frame", i)?;
                frame[crate::protocol::HEADER_LEN..len].copy_from_slice(body);
                let message = match decode_engine(&frame[..len]) {
                    Decoded::Frame(decoded, used)
                        if used == len
                            && decoded.sequence == sequence
                            && is_order_reply(&decoded.message) =>
                    {
                        decoded.message
                    }
                    _ => {
                        return Err(SnapshotError::invalid(
                            at,
                            "core.history.frame",
                            i,
                            "not an order reply with the next outbound sequence",
                        ));
                    }
                };
                if sequence >= keep_from {
                    let slot = self.history_slot(index, sequence);
                    self.history[slot] = message;
                }
            }
        }
        Ok(())
    }
}

/// True for the replies that carry an outbound sequence (`a`, `j`, `f`, `c`, `r`).
const fn is_order_reply(message: &EngineMessage) -> bool {
    matches!(
        message,
        EngineMessage::Accepted(_)
            | EngineMessage::Rejected(_)
            | EngineMessage::Fill(_)
            | EngineMessage::Cancelled(_)
            | EngineMessage::Replaced(_)
    )
}

/// The venue's order id for a session's client order id.
#[must_use]
pub const fn order_id(session: u32, client_order_id: u32) -> u64 {
    ((session as u64) << 32) | client_order_id as u64
}

/// The wire code of an order reject (`docs/order-entry.md`).
#[must_use]
pub fn reject_code(reason: Reject) -> u16 {
    use sequent_matching::ThrottleReject as T;
    match reason {
        Reject::DuplicateId => 1,
        Reject::UnknownOrder => 2,
        Reject::Invalid => 3,
        Reject::PostOnlyWouldCross => 4,
        Reject::OrderPoolFull => 5,
        Reject::PriceLevelsFull => 6,
        Reject::IdTableFull => 7,
        Reject::Throttle(T::KillSwitch) => 101,
        Reject::Throttle(T::RateLimit) => 102,
        Reject::Throttle(T::MaxQty) => 103,
        Reject::Throttle(T::MaxNotional) => 104,
        Reject::Throttle(T::PriceCollar) => 105,
        Reject::Throttle(T::MaxOpenOrders) => 106,
        Reject::Throttle(T::CreditLimit) => 107,
        Reject::Throttle(T::NoReferencePrice) => 108,
    }
}

/// The wire code of a cancel reason (`docs/order-entry.md`).
#[must_use]
pub const fn cancel_code(reason: CancelReason) -> u8 {
    match reason {
        CancelReason::User => 1,
        CancelReason::Ioc => 2,
        CancelReason::Fok => 3,
        CancelReason::Market => 4,
        CancelReason::SelfTrade => 5,
        CancelReason::KillSwitch => 6,
        CancelReason::Expired => 7,
        CancelReason::MassCancel => 8,
    }
}

/// The feed's locate code of a book (1-based; 0 is never a symbol).
#[must_use]
pub const fn locate(symbol: SymbolId) -> u16 {
    symbol + 1
}

/// A symbol as the feed writes it: 8 bytes, space-padded.
fn feed_symbol(symbol: &[u8; 8]) -> [u8; 8] {
    let mut out = [b' '; 8];
    let text = symbol_text(symbol);
    out[..text.len()].copy_from_slice(text);
    out
}

fn clamp_shares(qty: u64) -> u32 {
    u32::try_from(qty).unwrap_or(u32::MAX)
}
