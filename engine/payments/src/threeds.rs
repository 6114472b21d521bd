//! 3-D Secure 2 (EMV 3DS 2.2), the 3DS server's side: the engine sends the AReq, reads the ARes,
//! and for a challenge waits for the ACS's RReq (answered with an RRes) and the cardholder's
//! return (CRes). This module is the pure state machine; the engine stores the stage in the
//! payment and arms the deadlines.
//!
//! ```text
//!  AwaitingARes ──ARes Y/A──▶ Done(eci, cavv)              (frictionless)
//!       │  ──ARes N/U/R──▶ Failed(reason)
//!       └──ARes C──▶ AwaitingChallenge ──CRes──▶ AwaitingRReq
//!                          │                         │
//!                          └──RReq Y/A──▶ Done ◀──────┘ (RReq Y/A)
//!                          └──RReq N/U/R──▶ Failed(ChallengeFailed)
//!  any stage ──deadline──▶ Failed(Timeout)
//! ```
//! The RReq normally arrives before the browser's CRes (the ACS reports the result, then sends
//! the cardholder back), so both orders are accepted; the RReq decides.

use crate::types::{ARes, RReq, Reason, ThreeDsResult, TransStatus};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    AwaitingARes,
    AwaitingChallenge {
        acs_trans_id: u64,
    },
    /// The cardholder came back; the ACS's result (RReq) has not arrived.
    AwaitingRReq {
        acs_trans_id: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    ARes(ARes),
    CRes { acs_trans_id: u64 },
    RReq(RReq),
    Timeout,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Keep waiting in this stage.
    Wait(Stage),
    /// ARes said C: the merchant must send the cardholder to the ACS.
    Challenge {
        acs_trans_id: u64,
    },
    /// Authenticated (or attempted): authorise with this result.
    Done(ThreeDsResult),
    Failed(Reason),
    /// The message does not belong to this stage (or to this transaction): ignored.
    Unexpected,
}

/// The next step of a payment in `stage` on `event`.
pub fn step(stage: Stage, event: Event) -> Step {
    match (stage, event) {
        (_, Event::Timeout) => Step::Failed(Reason::ThreeDsTimeout),
        (Stage::AwaitingARes, Event::ARes(a)) => match (a.trans_status, a.result) {
            (TransStatus::Y | TransStatus::A, Some(r)) => Step::Done(r),
            // Y/A without an authentication value is not usable for liability shift.
            (TransStatus::Y | TransStatus::A, None) => Step::Failed(Reason::ThreeDsUnavailable),
            (TransStatus::C, _) => Step::Challenge {
                acs_trans_id: a.acs_trans_id,
            },
            (TransStatus::N, _) => Step::Failed(Reason::ThreeDsNotAuthenticated),
            (TransStatus::R, _) => Step::Failed(Reason::ThreeDsRejected),
            (TransStatus::U, _) => Step::Failed(Reason::ThreeDsUnavailable),
        },
        (Stage::AwaitingChallenge { acs_trans_id }, Event::CRes { acs_trans_id: id })
            if id == acs_trans_id =>
        {
            Step::Wait(Stage::AwaitingRReq { acs_trans_id })
        }
        (
            Stage::AwaitingChallenge { acs_trans_id } | Stage::AwaitingRReq { acs_trans_id },
            Event::RReq(r),
        ) if r.acs_trans_id == acs_trans_id => match (r.trans_status, r.result) {
            (TransStatus::Y | TransStatus::A, Some(res)) => Step::Done(res),
            _ => Step::Failed(Reason::ThreeDsChallengeFailed),
        },
        _ => Step::Unexpected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PaymentId;

    fn ares(s: TransStatus, r: Option<ThreeDsResult>) -> Event {
        Event::ARes(ARes {
            payment_id: PaymentId(1),
            acs_trans_id: 9,
            trans_status: s,
            result: r,
        })
    }

    #[test]
    fn frictionless_challenge_and_failures() {
        let ok = ThreeDsResult {
            eci: 5,
            cavv: [1; 20],
        };
        assert_eq!(
            step(Stage::AwaitingARes, ares(TransStatus::Y, Some(ok))),
            Step::Done(ok)
        );
        assert_eq!(
            step(Stage::AwaitingARes, ares(TransStatus::R, None)),
            Step::Failed(Reason::ThreeDsRejected)
        );
        assert_eq!(
            step(Stage::AwaitingARes, ares(TransStatus::C, None)),
            Step::Challenge { acs_trans_id: 9 }
        );
        let ch = Stage::AwaitingChallenge { acs_trans_id: 9 };
        assert_eq!(step(ch, Event::CRes { acs_trans_id: 8 }), Step::Unexpected);
        assert_eq!(
            step(ch, Event::CRes { acs_trans_id: 9 }),
            Step::Wait(Stage::AwaitingRReq { acs_trans_id: 9 })
        );
        let rreq = |s, r| {
            Event::RReq(RReq {
                payment_id: PaymentId(1),
                acs_trans_id: 9,
                trans_status: s,
                result: r,
            })
        };
        assert_eq!(step(ch, rreq(TransStatus::Y, Some(ok))), Step::Done(ok));
        assert_eq!(
            step(ch, rreq(TransStatus::N, None)),
            Step::Failed(Reason::ThreeDsChallengeFailed)
        );
        assert_eq!(
            step(Stage::AwaitingARes, rreq(TransStatus::Y, Some(ok))),
            Step::Unexpected
        );
        assert_eq!(
            step(ch, Event::Timeout),
            Step::Failed(Reason::ThreeDsTimeout)
        );
    }
}
