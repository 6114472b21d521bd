//! The binary encodings of `sequent ledger shard` and `coordinator` (docs/ledger-format.md,
//! "Shards as processes"): the TCP frames and messages between them and a shard's journal
//! records. It depends only on `sequent-ledger`, so the fuzz target in `engine/ledger/fuzz`
//! compiles this file alone (`#[path]`).

use std::io::{Read, Write};

use sequent_ledger::cross_shard::{
    CrossTransfer, Decision, Leg, ShardInput, ToCoordinator, ToShard,
};

/// Largest frame either side accepts; anything longer is a broken peer.
pub const FRAME_LEN_MAX: usize = 256;
/// Bytes of an encoded `ToShard`.
pub const TO_SHARD_LEN: usize = 1 + 4 * 16 + 4 + 2 + 1 + 1;
/// Bytes of an encoded `ToCoordinator`.
pub const TO_COORDINATOR_LEN: usize = 1 + 16 + 1 + 1;

fn leg_byte(leg: Leg) -> u8 {
    leg as u8
}

fn leg_from(byte: u8) -> Option<Leg> {
    match byte {
        1 => Some(Leg::Debit),
        2 => Some(Leg::Credit),
        _ => None,
    }
}

/// `ToShard`, fixed layout little-endian: tag (1 prepare, 2 resolve), transfer id, debit,
/// credit, amount (u128 each), ledger u32, code u16, leg u8 (1 debit, 2 credit), decision u8 (0
/// none, 1 post, 2 void).
pub fn encode_to_shard(message: &ToShard) -> [u8; TO_SHARD_LEN] {
    let (tag, transfer, leg, decision) = match *message {
        ToShard::Prepare { transfer, leg } => (1, transfer, leg, 0),
        ToShard::Resolve {
            transfer,
            leg,
            decision,
        } => (
            2,
            transfer,
            leg,
            match decision {
                Decision::Post => 1,
                Decision::Void => 2,
            },
        ),
    };
    let mut out = [0u8; TO_SHARD_LEN];
    out[0] = tag;
    for (i, v) in [
        transfer.id,
        transfer.debit_account_id,
        transfer.credit_account_id,
        transfer.amount,
    ]
    .into_iter()
    .enumerate()
    {
        out[1 + 16 * i..17 + 16 * i].copy_from_slice(&v.to_le_bytes());
    }
    out[65..69].copy_from_slice(&transfer.ledger.to_le_bytes());
    out[69..71].copy_from_slice(&transfer.code.to_le_bytes());
    out[71] = leg_byte(leg);
    out[72] = decision;
    out
}

/// The inverse of `encode_to_shard`; `None` for any other length or an unknown tag, leg or
/// decision.
pub fn decode_to_shard(bytes: &[u8]) -> Option<ToShard> {
    let bytes: &[u8; TO_SHARD_LEN] = bytes.try_into().ok()?;
    let u128_at = |at: usize| {
        let mut word = [0u8; 16];
        word.copy_from_slice(&bytes[at..at + 16]);
        u128::from_le_bytes(word)
    };
    let transfer = CrossTransfer {
        id: u128_at(1),
        debit_account_id: u128_at(17),
        credit_account_id: u128_at(33),
        amount: u128_at(49),
        ledger: u32::from_le_bytes([bytes[65], bytes[66], bytes[67], bytes[68]]),
        code: u16::from_le_bytes([bytes[69], bytes[70]]),
    };
    let leg = leg_from(bytes[71])?;
    match (bytes[0], bytes[72]) {
        (1, 0) => Some(ToShard::Prepare { transfer, leg }),
        (2, 1 | 2) => Some(ToShard::Resolve {
            transfer,
            leg,
            decision: if bytes[72] == 1 {
                Decision::Post
            } else {
                Decision::Void
            },
        }),
        _ => None,
    }
}

/// `ToCoordinator`: tag (1 prepared, 2 resolved), transfer id u128, leg u8, ok u8 (0 or 1; 0 for
/// resolved).
pub fn encode_to_coordinator(message: &ToCoordinator) -> [u8; TO_COORDINATOR_LEN] {
    let (tag, id, leg, ok) = match *message {
        ToCoordinator::Prepared { id, leg, ok } => (1, id, leg, u8::from(ok)),
        ToCoordinator::Resolved { id, leg } => (2, id, leg, 0),
    };
    let mut out = [0u8; TO_COORDINATOR_LEN];
    out[0] = tag;
    out[1..17].copy_from_slice(&id.to_le_bytes());
    out[17] = leg_byte(leg);
    out[18] = ok;
    out
}

/// The inverse of `encode_to_coordinator`.
pub fn decode_to_coordinator(bytes: &[u8]) -> Option<ToCoordinator> {
    let bytes: &[u8; TO_COORDINATOR_LEN] = bytes.try_into().ok()?;
    let mut word = [0u8; 16];
    word.copy_from_slice(&bytes[1..17]);
    let id = u128::from_le_bytes(word);
    let leg = leg_from(bytes[17])?;
    match (bytes[0], bytes[18]) {
        (1, ok @ (0 | 1)) => Some(ToCoordinator::Prepared {
            id,
            leg,
            ok: ok == 1,
        }),
        (2, 0) => Some(ToCoordinator::Resolved { id, leg }),
        _ => None,
    }
}

/// A shard's journaled input: its time (u64) then the `ToShard` encoding.
pub fn encode_shard_input(input: &ShardInput) -> [u8; 8 + TO_SHARD_LEN] {
    let mut out = [0u8; 8 + TO_SHARD_LEN];
    out[..8].copy_from_slice(&input.ts.to_le_bytes());
    out[8..].copy_from_slice(&encode_to_shard(&input.message));
    out
}

pub fn decode_shard_input(bytes: &[u8]) -> Option<ShardInput> {
    let (ts, message) = bytes.split_first_chunk::<8>()?;
    Some(ShardInput {
        ts: u64::from_le_bytes(*ts),
        message: decode_to_shard(message)?,
    })
}

/// Writes one frame: the payload's length (u32 little-endian), then the payload.
pub fn write_frame(out: &mut impl Write, payload: &[u8]) -> std::io::Result<()> {
    out.write_all(&(payload.len() as u32).to_le_bytes())?;
    out.write_all(payload)
}

/// Reads one frame into `buf`; `Ok(false)` at a clean end of stream.
pub fn read_frame(input: &mut impl Read, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > FRAME_LEN_MAX {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes, at most {FRAME_LEN_MAX}"),
        ));
    }
    buf.resize(len, 0);
    input.read_exact(buf)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_refused() {
        let transfer = CrossTransfer {
            id: 7,
            debit_account_id: 1,
            credit_account_id: 2,
            amount: u128::MAX,
            ledger: 1,
            code: 9,
        };
        for message in [
            ToShard::Prepare {
                transfer,
                leg: Leg::Credit,
            },
            ToShard::Resolve {
                transfer,
                leg: Leg::Debit,
                decision: Decision::Void,
            },
        ] {
            assert_eq!(decode_to_shard(&encode_to_shard(&message)), Some(message));
            let input = ShardInput { ts: 5, message };
            assert_eq!(decode_shard_input(&encode_shard_input(&input)), Some(input));
        }
        for reply in [
            ToCoordinator::Prepared {
                id: 3,
                leg: Leg::Debit,
                ok: true,
            },
            ToCoordinator::Resolved {
                id: 3,
                leg: Leg::Credit,
            },
        ] {
            assert_eq!(
                decode_to_coordinator(&encode_to_coordinator(&reply)),
                Some(reply)
            );
        }
        assert_eq!(decode_to_shard(&[0; TO_SHARD_LEN]), None);
        assert_eq!(decode_to_coordinator(&[1; 3]), None);
        let mut frame = Vec::new();
        let mut long = &[0xff, 0xff, 0, 0][..];
        assert!(read_frame(&mut long, &mut frame).is_err());
    }
}
