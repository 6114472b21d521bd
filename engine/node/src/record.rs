//! How the engine's inputs are written to the journal: one record per input, its timestamp the
//! sequencer's, its kind one of the constants below. Replay decodes them back into the same
//! [`Input`]s.

use crate::core::Input;
use crate::protocol::{ClientMessage, Decoded, FRAME_LEN_MAX, decode_client, encode_client};

/// A client frame: connection id (8 bytes LE), then the frame as on the wire.
pub const KIND_FRAME: u8 = 1;
/// A connection closed: connection id (8 bytes LE).
pub const KIND_DISCONNECTED: u8 = 2;
/// End of the trading day: no payload.
pub const KIND_END_OF_DAY: u8 = 3;
/// The engine started (after recovering) or a standby took over: the new term (8 bytes LE; an
/// empty payload, written before terms existed, means term 0). Every session logged in before it
/// is logged out, as if its connection closed. See docs/replication.md for terms.
pub const KIND_RESTART: u8 = 4;

/// The longest payload of any record.
pub const PAYLOAD_LEN_MAX: usize = 8 + FRAME_LEN_MAX;

/// Encodes `input` into `out`; returns (kind, payload length).
pub fn encode(input: &Input, out: &mut [u8; PAYLOAD_LEN_MAX]) -> (u8, usize) {
    match input {
        Input::Frame {
            connection,
            sequence,
            message,
        } => {
            out[..8].copy_from_slice(&connection.to_le_bytes());
            let (_, frame) = out.split_at_mut(8);
            let len = encode_client(frame, *sequence, message);
            (KIND_FRAME, 8 + len)
        }
        Input::Disconnected { connection } => {
            out[..8].copy_from_slice(&connection.to_le_bytes());
            (KIND_DISCONNECTED, 8)
        }
        Input::EndOfDay => (KIND_END_OF_DAY, 0),
        Input::Restart => (KIND_RESTART, 0),
    }
}

/// Encodes the restart marker of `term` into `out`; returns (kind, payload length).
pub fn encode_restart(term: u64, out: &mut [u8; PAYLOAD_LEN_MAX]) -> (u8, usize) {
    out[..8].copy_from_slice(&term.to_le_bytes());
    (KIND_RESTART, 8)
}

/// The term a restart marker starts, or `None` for any other record.
#[must_use]
pub fn restart_term(kind: u8, payload: &[u8]) -> Option<u64> {
    match (kind, payload.len()) {
        (KIND_RESTART, 0) => Some(0),
        (KIND_RESTART, 8) => payload.try_into().ok().map(u64::from_le_bytes),
        _ => None,
    }
}

/// Decodes a record back into its input; the error says what is wrong.
pub fn decode(kind: u8, payload: &[u8]) -> Result<Input, String> {
    let connection = || -> Result<u64, String> {
        payload
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| format!("payload of {} bytes has no connection id", payload.len()))
    };
    match kind {
        KIND_FRAME => {
            let connection = connection()?;
            match decode_client(&payload[8..]) {
                Decoded::Frame(frame, len) if len == payload.len() - 8 => Ok(Input::Frame {
                    connection,
                    sequence: frame.sequence,
                    message: frame.message,
                }),
                Decoded::Frame(_, len) => Err(format!(
                    "frame of {len} bytes followed by {} more",
                    payload.len() - 8 - len
                )),
                Decoded::Incomplete => Err("truncated frame".into()),
                Decoded::Error(error, _) => Err(error.to_string()),
            }
        }
        KIND_DISCONNECTED if payload.len() == 8 => Ok(Input::Disconnected {
            connection: connection()?,
        }),
        KIND_END_OF_DAY if payload.is_empty() => Ok(Input::EndOfDay),
        KIND_RESTART if payload.is_empty() || payload.len() == 8 => Ok(Input::Restart),
        _ => Err(format!(
            "record kind {kind} with a payload of {} bytes is not an engine input",
            payload.len()
        )),
    }
}

/// True for the client messages that are sequenced (they change state and are journaled even when
/// they turn out to be resends).
#[must_use]
pub const fn is_sequenced(message: &ClientMessage) -> bool {
    matches!(
        message,
        ClientMessage::NewOrder(_)
            | ClientMessage::Cancel(_)
            | ClientMessage::Replace(_)
            | ClientMessage::MassCancel(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{CancelBody, LoginBody};

    #[test]
    fn inputs_round_trip_through_records() {
        let mut buf = [0u8; PAYLOAD_LEN_MAX];
        for input in [
            Input::Frame {
                connection: 1 << 40 | 3,
                sequence: 9,
                message: ClientMessage::Cancel(CancelBody {
                    client_order_id: 5.into(),
                    reserved: 0.into(),
                }),
            },
            Input::Frame {
                connection: 2,
                sequence: 0,
                message: ClientMessage::Login(LoginBody {
                    session: 3.into(),
                    next_expected: 1.into(),
                    flags: 1,
                    reserved: [0; 7],
                }),
            },
            Input::Disconnected { connection: 77 },
            Input::EndOfDay,
            Input::Restart,
        ] {
            let (kind, len) = encode(&input, &mut buf);
            assert_eq!(decode(kind, &buf[..len]), Ok(input));
        }
        let (kind, len) = encode_restart(7, &mut buf);
        assert_eq!(decode(kind, &buf[..len]), Ok(Input::Restart));
        assert_eq!(restart_term(kind, &buf[..len]), Some(7));
        assert_eq!(restart_term(KIND_RESTART, &[]), Some(0));
        assert_eq!(restart_term(KIND_END_OF_DAY, &[]), None);
        assert!(decode(KIND_RESTART, &[1, 2, 3]).is_err());
        assert!(decode(KIND_FRAME, &[1, 2, 3]).is_err());
        assert!(decode(KIND_END_OF_DAY, &[0]).is_err());
        assert!(decode(99, &[]).is_err());
    }
}
