//! A blocking order-entry client over TCP: what tests, `sequent demo` and the benchmark use to talk
//! to an engine. Not for the hot path of anything.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::protocol::{
    CancelBody, ClientMessage, Decoded, EngineMessage, FRAME_LEN_MAX, Frame, LoginBody, NO_RESEND,
    NewOrderBody, ReplaceBody, decode_engine, encode_client, symbol_bytes,
};

/// A connected client.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    buffer: Vec<u8>,
    frame: [u8; FRAME_LEN_MAX],
    /// The next sequence this client sends.
    pub next_sequence: u32,
    /// The outbound sequence after the last order reply received on this connection (0 before
    /// any): what a reconnecting client passes to [`Client::login_from`] to be resent the rest.
    pub next_expected_out: u32,
}

impl Client {
    /// Connects with Nagle off and a read timeout.
    pub fn connect(address: SocketAddr, timeout: Duration) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&address, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        Ok(Self {
            stream,
            buffer: Vec::with_capacity(64 * 1024),
            frame: [0; FRAME_LEN_MAX],
            next_sequence: 1,
            next_expected_out: 0,
        })
    }

    /// Sends one frame with an explicit header sequence.
    pub fn send(&mut self, sequence: u32, message: &ClientMessage) -> io::Result<()> {
        let len = encode_client(&mut self.frame, sequence, message);
        self.stream.write_all(&self.frame[..len])
    }

    /// Sends raw bytes (for tests of malformed input).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Logs in asking for no resend and waits for the answer; on acceptance, resumes sending at
    /// the engine's next expected sequence.
    pub fn login(&mut self, session: u32, cancel_on_disconnect: bool) -> io::Result<EngineMessage> {
        self.login_from(session, cancel_on_disconnect, NO_RESEND)
    }

    /// Logs in asking for the replies from outbound sequence `next_expected` on (`NO_RESEND`:
    /// none) and waits for the answer; on acceptance, resumes sending at the engine's next
    /// expected sequence. The resent replies (and a `ResendGap` first, if some are no longer
    /// held) follow; read them with [`Client::receive`].
    pub fn login_from(
        &mut self,
        session: u32,
        cancel_on_disconnect: bool,
        next_expected: u32,
    ) -> io::Result<EngineMessage> {
        self.send(
            0,
            &ClientMessage::Login(LoginBody {
                session: session.into(),
                next_expected: next_expected.into(),
                flags: u8::from(cancel_on_disconnect),
                reserved: [0; 7],
            }),
        )?;
        let reply = self.receive()?.message;
        if let EngineMessage::LoginAccepted(body) = reply {
            self.next_sequence = body.next_expected.get();
        }
        Ok(reply)
    }

    /// Sends a sequenced message with the next sequence; returns the sequence used.
    pub fn send_sequenced(&mut self, message: &ClientMessage) -> io::Result<u32> {
        let sequence = self.next_sequence;
        self.send(sequence, message)?;
        self.next_sequence += 1;
        Ok(sequence)
    }

    /// A limit GTC order.
    pub fn new_limit(
        &mut self,
        client_order_id: u32,
        account: u32,
        symbol: &str,
        buy: bool,
        price: i64,
        qty: u64,
    ) -> io::Result<u32> {
        self.send_sequenced(&ClientMessage::NewOrder(limit_order(
            client_order_id,
            account,
            symbol,
            buy,
            price,
            qty,
        )))
    }

    /// A cancel.
    pub fn cancel(&mut self, client_order_id: u32) -> io::Result<u32> {
        self.send_sequenced(&ClientMessage::Cancel(CancelBody {
            client_order_id: client_order_id.into(),
            reserved: 0.into(),
        }))
    }

    /// A replace.
    pub fn replace(
        &mut self,
        client_order_id: u32,
        price: Option<i64>,
        qty: u64,
    ) -> io::Result<u32> {
        self.send_sequenced(&ClientMessage::Replace(ReplaceBody {
            client_order_id: client_order_id.into(),
            flags: u8::from(price.is_some()),
            reserved: [0; 3],
            price: price.unwrap_or(0).into(),
            qty: qty.into(),
        }))
    }

    /// The next frame from the engine (blocks up to the read timeout).
    pub fn receive(&mut self) -> io::Result<Frame<EngineMessage>> {
        loop {
            match decode_engine(&self.buffer) {
                Decoded::Frame(frame, len) => {
                    self.buffer.drain(..len);
                    if frame.sequence > 0 {
                        self.next_expected_out = frame.sequence + 1;
                    }
                    return Ok(frame);
                }
                Decoded::Error(error, _) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        error.to_string(),
                    ));
                }
                Decoded::Incomplete => {
                    let mut chunk = [0u8; 4096];
                    let n = self.stream.read(&mut chunk)?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the engine closed the connection",
                        ));
                    }
                    self.buffer.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }

    /// Frames until `count` have arrived or the read times out.
    pub fn receive_n(&mut self, count: usize) -> io::Result<Vec<Frame<EngineMessage>>> {
        (0..count).map(|_| self.receive()).collect()
    }

    /// Sets the read timeout.
    pub fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(timeout))
    }
}

/// A limit GTC order body.
#[must_use]
pub fn limit_order(
    client_order_id: u32,
    account: u32,
    symbol: &str,
    buy: bool,
    price: i64,
    qty: u64,
) -> NewOrderBody {
    NewOrderBody {
        client_order_id: client_order_id.into(),
        account: account.into(),
        symbol: symbol_bytes(symbol).unwrap_or([b'?'; 8]),
        side: if buy { b'B' } else { b'S' },
        order_type: b'L',
        tif: b'G',
        flags: 0,
        reserved: 0.into(),
        price: price.into(),
        qty: qty.into(),
    }
}
