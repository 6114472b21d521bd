//! `sequent-feed`: market data over UDP multicast (issue 7, title 6's market-data half).
//!
//! Owns the wire protocol ([`proto`]), the book builder ([`book`]), ITCH 5.0 import ([`itch`]),
//! the sans-IO publisher and subscriber state machines ([`publisher`], [`subscriber`]), seeded
//! loss injection ([`loss`]) and the sockets that carry them ([`net`]). The protocol, book,
//! publisher and subscriber cores do no I/O and read no clock: time comes in as arguments, so
//! tests drive them in virtual time. Only [`net`] touches the kernel, and it is the one module
//! allowed `unsafe` (the `sendmmsg` / `recvmmsg` / `poll` calls, io_uring, and behind the `af-xdp`
//! feature AF_XDP and `bpf(2)`), each block with its SAFETY line.
//!
//! It must not touch the matching engine's state: it rebuilds books from messages alone.

#![deny(unsafe_code)]

pub mod book;
pub mod itch;
pub mod loss;
pub mod net;
pub mod proto;
pub mod publisher;
pub mod subscriber;
