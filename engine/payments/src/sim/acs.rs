//! A simulated issuer ACS (access control server) with a directory server in front: answers an
//! AReq with an ARes by configurable rules, and a challenge answer with the RReq the ACS would
//! send. Deterministic: transaction ids count from 1, authentication values derive from them.

use crate::types::{ARes, Bin, PaymentId, RReq, ThreeDsRequest, ThreeDsResult, TransStatus};

/// The rules, checked in field order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcsRules {
    /// Inclusive 8-digit BIN ranges the issuer rejects outright (ARes R).
    pub reject_bins: Vec<(u32, u32)>,
    /// BIN ranges whose issuer does not take part (ARes A, attempted, ECI 06).
    pub attempted_bins: Vec<(u32, u32)>,
    /// Amounts at or above this are challenged (ARes C); below are frictionless (ARes Y).
    pub challenge_from: u64,
    /// The one-time code the cardholder must type in a challenge.
    pub otp: u32,
}

impl Default for AcsRules {
    fn default() -> Self {
        Self {
            reject_bins: vec![(55_550_000, 55_559_999)],
            attempted_bins: vec![(37_000_000, 37_999_999)],
            challenge_from: 100_000,
            otp: 123_456,
        }
    }
}

#[derive(Clone, Debug)]
pub struct AcsSim {
    pub rules: AcsRules,
    next_trans_id: u64,
    /// Open challenges: (ACS transaction id, payment).
    challenges: Vec<(u64, PaymentId)>,
}

fn cavv_for(trans_id: u64) -> [u8; 20] {
    let mut c = [0xAC; 20];
    c[..8].copy_from_slice(&trans_id.to_le_bytes());
    c
}

fn in_ranges(ranges: &[(u32, u32)], bin: Bin) -> bool {
    let b = crate::screen::bin8(bin);
    ranges.iter().any(|&(lo, hi)| lo <= b && b <= hi)
}

impl AcsSim {
    pub fn new(rules: AcsRules) -> Self {
        Self {
            rules,
            next_trans_id: 1,
            challenges: Vec::new(),
        }
    }

    /// Answers an AReq (`None` for anything else).
    pub fn handle(&mut self, req: &ThreeDsRequest) -> Option<ARes> {
        let ThreeDsRequest::AReq {
            payment_id,
            amount,
            bin,
            ..
        } = *req
        else {
            return None;
        };
        let acs_trans_id = self.next_trans_id;
        self.next_trans_id += 1;
        let (trans_status, result) = if in_ranges(&self.rules.reject_bins, bin) {
            (TransStatus::R, None)
        } else if in_ranges(&self.rules.attempted_bins, bin) {
            (
                TransStatus::A,
                Some(ThreeDsResult {
                    eci: 6,
                    cavv: cavv_for(acs_trans_id),
                }),
            )
        } else if amount >= self.rules.challenge_from {
            self.challenges.push((acs_trans_id, payment_id));
            (TransStatus::C, None)
        } else {
            (
                TransStatus::Y,
                Some(ThreeDsResult {
                    eci: 5,
                    cavv: cavv_for(acs_trans_id),
                }),
            )
        };
        Some(ARes {
            payment_id,
            acs_trans_id,
            trans_status,
            result,
        })
    }

    /// The cardholder types `answer` in challenge `acs_trans_id`: the RReq the ACS sends
    /// (`None` for an unknown or finished challenge).
    pub fn answer_challenge(&mut self, acs_trans_id: u64, answer: u32) -> Option<RReq> {
        let i = self.challenges.iter().position(|c| c.0 == acs_trans_id)?;
        let (_, payment_id) = self.challenges.remove(i);
        let ok = answer == self.rules.otp;
        Some(RReq {
            payment_id,
            acs_trans_id,
            trans_status: if ok { TransStatus::Y } else { TransStatus::N },
            result: ok.then(|| ThreeDsResult {
                eci: 5,
                cavv: cavv_for(acs_trans_id),
            }),
        })
    }
}
