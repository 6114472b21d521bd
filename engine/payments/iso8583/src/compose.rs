//! Building the messages the flows need from the ones before them: a response from its request,
//! a 0400 reversal from the 0100 it undoes, field 90 both ways.

use crate::codes::ResponseCode;
use crate::message::{FieldError, Message, Mti};

/// Fields a response echoes from its request. Fields 2 and 14 are not echoed: card data crosses the wire
/// once, towards the acquirer.
pub const ECHOED_FIELDS: [u8; 14] = [3, 4, 7, 11, 12, 13, 32, 37, 41, 42, 48, 49, 70, 90];

/// Field 90, original data elements (n 42): what a reversal points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalData {
    /// Original MTI (usually 0100 or 0200).
    pub mti: Mti,
    /// Original field 11, 6 digits.
    pub stan: String,
    /// Original field 7, 10 digits.
    pub transmission: String,
    /// Original field 32, up to 11 digits (zero-filled on the left on the wire).
    pub acquirer_id: String,
}

impl OriginalData {
    /// The 42 digits: MTI 4, STAN 6, transmission date-time 10, acquiring institution id 11,
    /// forwarding institution id 11 (zeros: we do not forward).
    pub fn encode(&self) -> String {
        format!(
            "{}{:0>6}{:0>10}{:0>11}{}",
            self.mti,
            self.stan,
            self.transmission,
            self.acquirer_id,
            "0".repeat(11)
        )
    }

    /// Parses field 90; `None` when it is not 42 digits with a known MTI.
    pub fn decode(text: &str) -> Option<OriginalData> {
        if text.len() != 42 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(OriginalData {
            mti: Mti::from_digits(&text.as_bytes()[..4])?,
            stan: text[4..10].to_owned(),
            transmission: text[10..20].to_owned(),
            acquirer_id: text[20..31].trim_start_matches('0').to_owned(),
        })
    }
}

impl Message {
    /// The response to `request` (0100 → 0110 …) with the echoed fields and field 39 set.
    /// `None` when `request` is itself a response.
    pub fn response_to(request: &Message, code: ResponseCode) -> Option<Message> {
        let mut response = Message::new(request.mti().response()?);
        for n in ECHOED_FIELDS {
            if let Some(value) = request.get(n) {
                response.set(n, value).ok()?;
            }
        }
        response.set(39, code.code()).ok()?;
        Some(response)
    }

    /// A 0400 reversing `original` (a 0100 or 0200): same PAN, processing code, amount,
    /// currency, terminal, merchant, RRN and private data, a new STAN and transmission time, and
    /// field 90 pointing at the original.
    pub fn reversal_of(
        original: &Message,
        stan: &str,
        transmission: &str,
    ) -> Result<Message, FieldError> {
        let mut reversal = Message::new(Mti::ReversalRequest);
        if let Some(pan) = original.pan() {
            reversal.set_pan(pan.clone());
        }
        for n in [3, 4, 14, 32, 37, 41, 42, 48, 49] {
            if let Some(value) = original.get(n) {
                reversal.set(n, value)?;
            }
        }
        reversal.set(7, transmission)?.set(11, stan)?;
        let data = OriginalData {
            mti: original.mti(),
            stan: original.get_str(11).unwrap_or("000000").to_owned(),
            transmission: original.get_str(7).unwrap_or("0000000000").to_owned(),
            acquirer_id: original.get_str(32).unwrap_or("0").to_owned(),
        };
        reversal.set(90, data.encode())?;
        Ok(reversal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_90_round_trip() {
        let data = OriginalData {
            mti: Mti::AuthorisationRequest,
            stan: "000123".into(),
            transmission: "1124053800".into(),
            acquirer_id: "12345".into(),
        };
        let text = data.encode();
        assert_eq!(text, "010000012311240538000000001234500000000000");
        assert_eq!(OriginalData::decode(&text), Some(data));
        assert_eq!(OriginalData::decode("0100"), None);
    }
}
