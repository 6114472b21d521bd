//! TCP framing: each message is preceded by its length as 2 bytes, big-endian (network order),
//! counting the message only (not the 2 bytes). Lengths 0 and above
//! [`crate::MESSAGE_BYTES_MAX`] cannot occur: 0 is refused, and `u16` caps the rest.

use crate::message::{DecodeError, EncodeError, Message};

/// Length prefix size.
pub const FRAME_HEADER_BYTES: usize = 2;

/// Appends `message` framed (length prefix + body) to `out`.
pub fn encode_frame(message: &Message, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0, 0]);
    message.encode(out).inspect_err(|_| out.truncate(start))?;
    let len = out.len() - start - FRAME_HEADER_BYTES;
    let len = u16::try_from(len).map_err(|_| EncodeError::TooLarge { len })?;
    out[start..start + FRAME_HEADER_BYTES].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Why the byte stream is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A zero length prefix at this stream offset.
    #[error("zero-length frame at stream offset {offset}")]
    Empty {
        /// Offset of the prefix in the stream.
        offset: u64,
    },
    /// The frame's body does not decode; `error`'s offsets are within the body.
    #[error("frame at stream offset {offset}: {error}")]
    Message {
        /// Offset of the frame's prefix in the stream.
        offset: u64,
        /// The decoder's error.
        error: DecodeError,
    },
}

/// Sans-IO deframer: feed it bytes as they arrive ([`Deframer::handle_bytes`]), take whole
/// messages out ([`Deframer::poll_message`]). A frame that fails to decode is consumed and
/// reported, so the stream stays in step; a zero length is fatal (the stream is out of step).
#[derive(Debug, Default)]
pub struct Deframer {
    /// Bytes received and not yet consumed.
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    consumed: u64,
}

impl Deframer {
    /// An empty deframer.
    pub fn new() -> Deframer {
        Deframer::default()
    }

    /// Appends received bytes.
    pub fn handle_bytes(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that do not yet make a whole frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole message, if one has arrived.
    pub fn poll_message(&mut self) -> Option<Result<Message, FrameError>> {
        let body = self.poll_frame()?;
        Some(body.and_then(|(offset, body)| {
            Message::decode(&body).map_err(|error| FrameError::Message { offset, error })
        }))
    }

    /// The next whole frame's body with its stream offset, undecoded.
    pub fn poll_frame(&mut self) -> Option<Result<(u64, Vec<u8>), FrameError>> {
        if self.buf.len() < FRAME_HEADER_BYTES {
            return None;
        }
        let offset = self.consumed;
        let len = usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]]));
        if len == 0 {
            return Some(Err(FrameError::Empty { offset }));
        }
        if self.buf.len() < FRAME_HEADER_BYTES + len {
            return None;
        }
        let body = self.buf[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + len].to_vec();
        self.buf.drain(..FRAME_HEADER_BYTES + len);
        self.consumed += (FRAME_HEADER_BYTES + len) as u64;
        Some(Ok((offset, body)))
    }
}
