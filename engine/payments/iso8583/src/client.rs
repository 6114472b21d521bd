//! A blocking connector client: the only I/O in this crate, kept apart from the sans-IO codec so
//! the payments node can talk to an acquirer (or `sequent-acquirer-sim`) without a runtime.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::frame::{Deframer, FrameError, encode_frame};
use crate::message::{EncodeError, Message};

/// What went wrong on the connection.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Socket error.
    #[error("acquirer connection: {0}")]
    Io(#[from] std::io::Error),
    /// The message does not encode.
    #[error("encode: {0}")]
    Encode(#[from] EncodeError),
    /// The acquirer sent bytes that do not decode.
    #[error("acquirer sent a bad frame: {0}")]
    Frame(#[from] FrameError),
    /// The acquirer closed the connection.
    #[error("acquirer closed the connection")]
    Closed,
}

/// One TCP connection to an acquirer, framed as in [`crate::frame`].
#[derive(Debug)]
pub struct AcquirerClient {
    stream: TcpStream,
    deframer: Deframer,
    /// Reused encode buffer.
    out: Vec<u8>,
}

impl AcquirerClient {
    /// Connects (Nagle off: each message is a small request that waits for its answer).
    pub fn connect(addr: impl ToSocketAddrs) -> Result<AcquirerClient, ClientError> {
        let stream = TcpStream::connect(addr)?;
        AcquirerClient::from_stream(stream)
    }

    /// Connects with a time limit.
    pub fn connect_timeout(
        addr: &SocketAddr,
        timeout: Duration,
    ) -> Result<AcquirerClient, ClientError> {
        let stream = TcpStream::connect_timeout(addr, timeout)?;
        AcquirerClient::from_stream(stream)
    }

    fn from_stream(stream: TcpStream) -> Result<AcquirerClient, ClientError> {
        stream.set_nodelay(true)?;
        Ok(AcquirerClient {
            stream,
            deframer: Deframer::new(),
            out: Vec::new(),
        })
    }

    /// Sends one message.
    pub fn send(&mut self, message: &Message) -> Result<(), ClientError> {
        self.out.clear();
        encode_frame(message, &mut self.out)?;
        self.stream.write_all(&self.out)?;
        Ok(())
    }

    /// The next message, waiting at most `timeout`; `Ok(None)` when none came in time (the
    /// caller's cue to reverse — see docs/iso8583.md).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Message>, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(message) = self.deframer.poll_message() {
                return Ok(Some(message?));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => self.deframer.handle_bytes(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(None);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The local address (for logs).
    pub fn local_addr(&self) -> Result<SocketAddr, ClientError> {
        Ok(self.stream.local_addr()?)
    }

    /// Closes both directions.
    pub fn close(self) -> Result<(), ClientError> {
        self.stream.shutdown(Shutdown::Both)?;
        Ok(())
    }
}
