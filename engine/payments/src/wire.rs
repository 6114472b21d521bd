//! Fixed binary encodings of [`Input`] and [`Output`], so that inputs can be journal records and
//! outputs can be compared byte for byte. The layout is written out in `docs/payments.md`:
//! one tag byte, then the fields in declaration order, little-endian, fixed width; an `Option`
//! is a presence byte (0 or 1) followed by the value when present; a list is a `u32` count
//! followed by the items. A decode consumes the whole buffer: trailing bytes are an error.
//! Decoding never panics and never allocates more than the input can back (a list's count is
//! checked against the bytes left before reserving).

use crate::types::*;

/// Most rows in one clearing file and lines in one report.
pub const LIST_MAX: u32 = 1 << 20;

/// Why bytes are not a valid input or output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The buffer ended inside the field at this offset.
    Truncated { offset: usize },
    /// Unknown tag or enum value at this offset.
    BadValue { offset: usize },
    /// Bytes left after a complete message.
    Trailing { offset: usize },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Truncated { offset } => write!(f, "truncated at byte {offset}"),
            Self::BadValue { offset } => write!(f, "invalid value at byte {offset}"),
            Self::Trailing { offset } => write!(f, "trailing bytes from byte {offset}"),
        }
    }
}

impl std::error::Error for DecodeError {}

struct W<'a>(&'a mut Vec<u8>);

impl W<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u128(&mut self, v: u128) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.0.extend_from_slice(v);
    }
    fn three_ds(&mut self, v: &Option<ThreeDsResult>) {
        match v {
            None => self.u8(0),
            Some(t) => {
                self.u8(1);
                self.u8(t.eci);
                self.bytes(&t.cavv);
            }
        }
    }
    fn result(&mut self, r: &AcquirerResult) {
        match *r {
            AcquirerResult::Approved {
                auth_code,
                approved_amount,
            } => {
                self.u8(1);
                self.bytes(&auth_code);
                self.u64(approved_amount);
            }
            AcquirerResult::Declined { code } => {
                self.u8(2);
                self.u16(code);
            }
            AcquirerResult::Error => self.u8(3),
        }
    }
    fn view(&mut self, v: &PaymentView) {
        self.u64(v.payment_id.0);
        self.u32(v.merchant.0);
        self.u8(v.status as u8);
        self.u8(v.reason.map_or(0, |r| r as u8));
        match v.decline_code {
            None => self.u8(0),
            Some(c) => {
                self.u8(1);
                self.u16(c);
            }
        }
        self.u64(v.amount);
        self.u16(v.currency);
        self.u64(v.authorised);
        self.u64(v.captured);
        self.u64(v.refunded);
        self.u64(v.charged_back);
        self.u16(v.last4);
        match v.acquirer {
            None => self.u8(0),
            Some(a) => {
                self.u8(1);
                self.u16(a.0);
            }
        }
        self.u8(v.attempt);
    }
}

struct R<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(DecodeError::Truncated { offset: self.pos })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.arr::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.arr()?))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    fn u128(&mut self) -> Result<u128, DecodeError> {
        Ok(u128::from_le_bytes(self.arr()?))
    }
    fn bad<T>(&self, at: usize) -> Result<T, DecodeError> {
        Err(DecodeError::BadValue { offset: at })
    }
    fn flag(&mut self) -> Result<bool, DecodeError> {
        let at = self.pos;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => self.bad(at),
        }
    }
    fn three_ds(&mut self) -> Result<Option<ThreeDsResult>, DecodeError> {
        if !self.flag()? {
            return Ok(None);
        }
        Ok(Some(ThreeDsResult {
            eci: self.u8()?,
            cavv: self.arr()?,
        }))
    }
    fn result(&mut self) -> Result<AcquirerResult, DecodeError> {
        let at = self.pos;
        Ok(match self.u8()? {
            1 => AcquirerResult::Approved {
                auth_code: self.arr()?,
                approved_amount: self.u64()?,
            },
            2 => AcquirerResult::Declined { code: self.u16()? },
            3 => AcquirerResult::Error,
            _ => return self.bad(at),
        })
    }
    fn trans_status(&mut self) -> Result<TransStatus, DecodeError> {
        let at = self.pos;
        match TransStatus::from_u8(self.u8()?) {
            Some(s) => Ok(s),
            None => self.bad(at),
        }
    }
    fn count(&mut self, item_min: usize) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = self.u32()?;
        if n > LIST_MAX || (n as usize).saturating_mul(item_min) > self.buf.len() - self.pos {
            return self.bad(at);
        }
        Ok(n as usize)
    }
    fn clearing_kind(&mut self) -> Result<ClearingKind, DecodeError> {
        let at = self.pos;
        Ok(match self.u8()? {
            1 => ClearingKind::Auth,
            2 => ClearingKind::Capture,
            3 => ClearingKind::Refund,
            4 => ClearingKind::Reversal,
            _ => return self.bad(at),
        })
    }
    fn view(&mut self) -> Result<PaymentView, DecodeError> {
        let payment_id = PaymentId(self.u64()?);
        let merchant = MerchantId(self.u32()?);
        let at = self.pos;
        let status = match Status::from_u8(self.u8()?) {
            Some(s) => s,
            None => return self.bad(at),
        };
        let at = self.pos;
        let reason = match self.u8()? {
            0 => None,
            b => match Reason::from_u8(b) {
                Some(r) => Some(r),
                None => return self.bad(at),
            },
        };
        let decline_code = if self.flag()? {
            Some(self.u16()?)
        } else {
            None
        };
        Ok(PaymentView {
            payment_id,
            merchant,
            status,
            reason,
            decline_code,
            amount: self.u64()?,
            currency: self.u16()?,
            authorised: self.u64()?,
            captured: self.u64()?,
            refunded: self.u64()?,
            charged_back: self.u64()?,
            last4: self.u16()?,
            acquirer: if self.flag()? {
                Some(AcquirerId(self.u16()?))
            } else {
                None
            },
            attempt: self.u8()?,
        })
    }
    fn finish<T>(&self, v: T) -> Result<T, DecodeError> {
        if self.pos != self.buf.len() {
            return Err(DecodeError::Trailing { offset: self.pos });
        }
        Ok(v)
    }
}

/// Input tags (stable).
mod tag {
    pub const CREATE: u8 = 1;
    pub const CAPTURE: u8 = 2;
    pub const VOID: u8 = 3;
    pub const REFUND: u8 = 4;
    pub const GET_STATUS: u8 = 5;
    pub const ACQ_REPLY: u8 = 6;
    pub const ACQ_TIMEOUT: u8 = 7;
    pub const ARES: u8 = 8;
    pub const CRES: u8 = 9;
    pub const RREQ: u8 = 10;
    pub const TICK: u8 = 11;
    pub const CLEARING: u8 = 12;
    pub const CB_OPENED: u8 = 13;
    pub const CB_EVIDENCE: u8 = 14;
    pub const CB_ACCEPTED: u8 = 15;
    pub const CB_RESOLVED: u8 = 16;
}

/// Output tags (stable).
mod otag {
    pub const REPLY: u8 = 1;
    pub const UPDATE: u8 = 2;
    pub const TO_ACQ: u8 = 3;
    pub const TO_3DS: u8 = 4;
    pub const CHALLENGE: u8 = 5;
    pub const ARM: u8 = 6;
    pub const LATE: u8 = 7;
    pub const RECON: u8 = 8;
    pub const DISPUTE: u8 = 9;
    pub const IGNORED: u8 = 10;
}

impl Input {
    /// Appends the encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = W(out);
        match self {
            Input::CreatePayment(c) => {
                w.u8(tag::CREATE);
                w.u32(c.merchant.0);
                w.u128(c.key.0);
                w.bytes(&c.body_hash);
                w.u64(c.amount);
                w.u16(c.currency);
                w.u128(c.token.0);
                w.u32(c.bin.0);
                w.u16(c.last4);
                w.u16(c.expiry.0);
                w.three_ds(&c.three_ds);
            }
            Input::Capture {
                merchant,
                key,
                body_hash,
                payment_id,
                amount,
            }
            | Input::Refund {
                merchant,
                key,
                body_hash,
                payment_id,
                amount,
            } => {
                w.u8(if matches!(self, Input::Capture { .. }) {
                    tag::CAPTURE
                } else {
                    tag::REFUND
                });
                w.u32(merchant.0);
                w.u128(key.0);
                w.bytes(body_hash);
                w.u64(payment_id.0);
                w.u64(*amount);
            }
            Input::Void {
                merchant,
                key,
                body_hash,
                payment_id,
            } => {
                w.u8(tag::VOID);
                w.u32(merchant.0);
                w.u128(key.0);
                w.bytes(body_hash);
                w.u64(payment_id.0);
            }
            Input::GetStatus {
                merchant,
                payment_id,
            } => {
                w.u8(tag::GET_STATUS);
                w.u32(merchant.0);
                w.u64(payment_id.0);
            }
            Input::AcquirerReply {
                acquirer,
                payment_id,
                attempt,
                result,
            } => {
                w.u8(tag::ACQ_REPLY);
                w.u16(acquirer.0);
                w.u64(payment_id.0);
                w.u8(*attempt);
                w.result(result);
            }
            Input::AcquirerTimeout {
                acquirer,
                payment_id,
                attempt,
            } => {
                w.u8(tag::ACQ_TIMEOUT);
                w.u16(acquirer.0);
                w.u64(payment_id.0);
                w.u8(*attempt);
            }
            Input::ThreeDsARes(a) => {
                w.u8(tag::ARES);
                w.u64(a.payment_id.0);
                w.u64(a.acs_trans_id);
                w.u8(a.trans_status as u8);
                w.three_ds(&a.result);
            }
            Input::ThreeDsCRes {
                payment_id,
                acs_trans_id,
            } => {
                w.u8(tag::CRES);
                w.u64(payment_id.0);
                w.u64(*acs_trans_id);
            }
            Input::ThreeDsRReq(r) => {
                w.u8(tag::RREQ);
                w.u64(r.payment_id.0);
                w.u64(r.acs_trans_id);
                w.u8(r.trans_status as u8);
                w.three_ds(&r.result);
            }
            Input::Tick => w.u8(tag::TICK),
            Input::ClearingFile { acquirer, rows } => {
                w.u8(tag::CLEARING);
                w.u16(acquirer.0);
                w.u32(rows.len() as u32);
                for r in rows {
                    w.u64(r.payment_id.0);
                    w.u8(r.reference);
                    w.u8(r.kind as u8);
                    w.u64(r.amount);
                    w.u16(r.currency);
                    w.u32(r.date);
                }
            }
            Input::ChargebackOpened {
                payment_id,
                amount,
                reason,
            } => {
                w.u8(tag::CB_OPENED);
                w.u64(payment_id.0);
                w.u64(*amount);
                w.u16(*reason);
            }
            Input::DisputeEvidenceSubmitted { payment_id } => {
                w.u8(tag::CB_EVIDENCE);
                w.u64(payment_id.0);
            }
            Input::DisputeAccepted { payment_id } => {
                w.u8(tag::CB_ACCEPTED);
                w.u64(payment_id.0);
            }
            Input::DisputeResolved { payment_id, won } => {
                w.u8(tag::CB_RESOLVED);
                w.u64(payment_id.0);
                w.u8(u8::from(*won));
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }

    /// Decodes one input occupying all of `buf`.
    pub fn decode(buf: &[u8]) -> Result<Input, DecodeError> {
        let mut r = R { buf, pos: 0 };
        let at = r.pos;
        let input = match r.u8()? {
            tag::CREATE => Input::CreatePayment(CreatePayment {
                merchant: MerchantId(r.u32()?),
                key: IdemKey(r.u128()?),
                body_hash: r.arr()?,
                amount: r.u64()?,
                currency: r.u16()?,
                token: Token(r.u128()?),
                bin: Bin(r.u32()?),
                last4: r.u16()?,
                expiry: Expiry(r.u16()?),
                three_ds: r.three_ds()?,
            }),
            t @ (tag::CAPTURE | tag::REFUND) => {
                let merchant = MerchantId(r.u32()?);
                let key = IdemKey(r.u128()?);
                let body_hash = r.arr()?;
                let payment_id = PaymentId(r.u64()?);
                let amount = r.u64()?;
                if t == tag::CAPTURE {
                    Input::Capture {
                        merchant,
                        key,
                        body_hash,
                        payment_id,
                        amount,
                    }
                } else {
                    Input::Refund {
                        merchant,
                        key,
                        body_hash,
                        payment_id,
                        amount,
                    }
                }
            }
            tag::VOID => Input::Void {
                merchant: MerchantId(r.u32()?),
                key: IdemKey(r.u128()?),
                body_hash: r.arr()?,
                payment_id: PaymentId(r.u64()?),
            },
            tag::GET_STATUS => Input::GetStatus {
                merchant: MerchantId(r.u32()?),
                payment_id: PaymentId(r.u64()?),
            },
            tag::ACQ_REPLY => Input::AcquirerReply {
                acquirer: AcquirerId(r.u16()?),
                payment_id: PaymentId(r.u64()?),
                attempt: r.u8()?,
                result: r.result()?,
            },
            tag::ACQ_TIMEOUT => Input::AcquirerTimeout {
                acquirer: AcquirerId(r.u16()?),
                payment_id: PaymentId(r.u64()?),
                attempt: r.u8()?,
            },
            tag::ARES => Input::ThreeDsARes(ARes {
                payment_id: PaymentId(r.u64()?),
                acs_trans_id: r.u64()?,
                trans_status: r.trans_status()?,
                result: r.three_ds()?,
            }),
            tag::CRES => Input::ThreeDsCRes {
                payment_id: PaymentId(r.u64()?),
                acs_trans_id: r.u64()?,
            },
            tag::RREQ => Input::ThreeDsRReq(RReq {
                payment_id: PaymentId(r.u64()?),
                acs_trans_id: r.u64()?,
                trans_status: r.trans_status()?,
                result: r.three_ds()?,
            }),
            tag::TICK => Input::Tick,
            tag::CLEARING => {
                let acquirer = AcquirerId(r.u16()?);
                let n = r.count(24)?;
                let mut rows = Vec::with_capacity(n);
                for _ in 0..n {
                    rows.push(ClearingRow {
                        payment_id: PaymentId(r.u64()?),
                        reference: r.u8()?,
                        kind: r.clearing_kind()?,
                        amount: r.u64()?,
                        currency: r.u16()?,
                        date: r.u32()?,
                    });
                }
                Input::ClearingFile { acquirer, rows }
            }
            tag::CB_OPENED => Input::ChargebackOpened {
                payment_id: PaymentId(r.u64()?),
                amount: r.u64()?,
                reason: r.u16()?,
            },
            tag::CB_EVIDENCE => Input::DisputeEvidenceSubmitted {
                payment_id: PaymentId(r.u64()?),
            },
            tag::CB_ACCEPTED => Input::DisputeAccepted {
                payment_id: PaymentId(r.u64()?),
            },
            tag::CB_RESOLVED => Input::DisputeResolved {
                payment_id: PaymentId(r.u64()?),
                won: r.flag()?,
            },
            _ => return r.bad(at),
        };
        r.finish(input)
    }
}

impl Output {
    /// Appends the encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = W(out);
        match self {
            Output::Reply {
                merchant,
                key,
                reply,
            } => {
                w.u8(otag::REPLY);
                w.u32(merchant.0);
                w.u128(key.0);
                match reply {
                    Reply::Ok(v) => {
                        w.u8(1);
                        w.view(v);
                    }
                    Reply::Rejected {
                        payment_id,
                        reason,
                        retry_at,
                    } => {
                        w.u8(2);
                        w.u64(payment_id.0);
                        w.u8(*reason as u8);
                        w.u64(retry_at.0);
                    }
                    Reply::Conflict => w.u8(3),
                    Reply::Status(v) => {
                        w.u8(4);
                        w.view(v);
                    }
                }
            }
            Output::PaymentUpdate(v) => {
                w.u8(otag::UPDATE);
                w.view(v);
            }
            Output::ToAcquirer {
                acquirer,
                payment_id,
                attempt,
                msg,
            } => {
                w.u8(otag::TO_ACQ);
                w.u16(acquirer.0);
                w.u64(payment_id.0);
                w.u8(*attempt);
                match msg {
                    AcquirerRequest::Authorise {
                        merchant,
                        amount,
                        currency,
                        token,
                        bin,
                        last4,
                        expiry,
                        three_ds,
                    } => {
                        w.u8(1);
                        w.u32(merchant.0);
                        w.u64(*amount);
                        w.u16(*currency);
                        w.u128(token.0);
                        w.u32(bin.0);
                        w.u16(*last4);
                        w.u16(expiry.0);
                        w.three_ds(three_ds);
                    }
                    AcquirerRequest::Reverse { amount } => {
                        w.u8(2);
                        w.u64(*amount);
                    }
                    AcquirerRequest::Capture { amount } => {
                        w.u8(3);
                        w.u64(*amount);
                    }
                    AcquirerRequest::Refund { amount, refund_no } => {
                        w.u8(4);
                        w.u64(*amount);
                        w.u8(*refund_no);
                    }
                }
            }
            Output::ToThreeDs(m) => {
                w.u8(otag::TO_3DS);
                match m {
                    ThreeDsRequest::AReq {
                        payment_id,
                        merchant,
                        amount,
                        currency,
                        token,
                        bin,
                    } => {
                        w.u8(1);
                        w.u64(payment_id.0);
                        w.u32(merchant.0);
                        w.u64(*amount);
                        w.u16(*currency);
                        w.u128(token.0);
                        w.u32(bin.0);
                    }
                    ThreeDsRequest::RRes {
                        payment_id,
                        acs_trans_id,
                    } => {
                        w.u8(2);
                        w.u64(payment_id.0);
                        w.u64(*acs_trans_id);
                    }
                }
            }
            Output::ChallengeRequired {
                merchant,
                payment_id,
                acs_trans_id,
            } => {
                w.u8(otag::CHALLENGE);
                w.u32(merchant.0);
                w.u64(payment_id.0);
                w.u64(*acs_trans_id);
            }
            Output::ArmTimer { at } => {
                w.u8(otag::ARM);
                w.u64(at.0);
            }
            Output::LateReply {
                acquirer,
                payment_id,
                attempt,
                result,
            } => {
                w.u8(otag::LATE);
                w.u16(acquirer.0);
                w.u64(payment_id.0);
                w.u8(*attempt);
                w.result(result);
            }
            Output::Reconciliation(rep) => {
                w.u8(otag::RECON);
                w.u16(rep.acquirer.0);
                w.u64(rep.settled_net);
                w.u64(rep.fees);
                w.u64(rep.refunds_settled);
                w.u32(rep.lines.len() as u32);
                for l in &rep.lines {
                    w.u8(l.category as u8);
                    w.u64(l.payment_id.0);
                    w.u8(l.kind as u8);
                    w.u8(l.reference);
                    w.u64(l.amount);
                    w.u64(l.expected);
                }
            }
            Output::Dispute {
                payment_id,
                state,
                amount,
            } => {
                w.u8(otag::DISPUTE);
                w.u64(payment_id.0);
                w.u8(*state as u8);
                w.u64(*amount);
            }
            Output::Ignored { payment_id, why } => {
                w.u8(otag::IGNORED);
                w.u64(payment_id.0);
                w.u8(*why as u8);
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }

    /// Decodes one output occupying all of `buf`.
    pub fn decode(buf: &[u8]) -> Result<Output, DecodeError> {
        let mut r = R { buf, pos: 0 };
        let at = r.pos;
        let output = match r.u8()? {
            otag::REPLY => {
                let merchant = MerchantId(r.u32()?);
                let key = IdemKey(r.u128()?);
                let at = r.pos;
                let reply = match r.u8()? {
                    1 => Reply::Ok(r.view()?),
                    2 => {
                        let payment_id = PaymentId(r.u64()?);
                        let at = r.pos;
                        let Some(reason) = Reason::from_u8(r.u8()?) else {
                            return r.bad(at);
                        };
                        Reply::Rejected {
                            payment_id,
                            reason,
                            retry_at: Nanos(r.u64()?),
                        }
                    }
                    3 => Reply::Conflict,
                    4 => Reply::Status(r.view()?),
                    _ => return r.bad(at),
                };
                Output::Reply {
                    merchant,
                    key,
                    reply,
                }
            }
            otag::UPDATE => Output::PaymentUpdate(r.view()?),
            otag::TO_ACQ => {
                let acquirer = AcquirerId(r.u16()?);
                let payment_id = PaymentId(r.u64()?);
                let attempt = r.u8()?;
                let at = r.pos;
                let msg = match r.u8()? {
                    1 => AcquirerRequest::Authorise {
                        merchant: MerchantId(r.u32()?),
                        amount: r.u64()?,
                        currency: r.u16()?,
                        token: Token(r.u128()?),
                        bin: Bin(r.u32()?),
                        last4: r.u16()?,
                        expiry: Expiry(r.u16()?),
                        three_ds: r.three_ds()?,
                    },
                    2 => AcquirerRequest::Reverse { amount: r.u64()? },
                    3 => AcquirerRequest::Capture { amount: r.u64()? },
                    4 => AcquirerRequest::Refund {
                        amount: r.u64()?,
                        refund_no: r.u8()?,
                    },
                    _ => return r.bad(at),
                };
                Output::ToAcquirer {
                    acquirer,
                    payment_id,
                    attempt,
                    msg,
                }
            }
            otag::TO_3DS => {
                let at = r.pos;
                Output::ToThreeDs(match r.u8()? {
                    1 => ThreeDsRequest::AReq {
                        payment_id: PaymentId(r.u64()?),
                        merchant: MerchantId(r.u32()?),
                        amount: r.u64()?,
                        currency: r.u16()?,
                        token: Token(r.u128()?),
                        bin: Bin(r.u32()?),
                    },
                    2 => ThreeDsRequest::RRes {
                        payment_id: PaymentId(r.u64()?),
                        acs_trans_id: r.u64()?,
                    },
                    _ => return r.bad(at),
                })
            }
            otag::CHALLENGE => Output::ChallengeRequired {
                merchant: MerchantId(r.u32()?),
                payment_id: PaymentId(r.u64()?),
                acs_trans_id: r.u64()?,
            },
            otag::ARM => Output::ArmTimer {
                at: Nanos(r.u64()?),
            },
            otag::LATE => Output::LateReply {
                acquirer: AcquirerId(r.u16()?),
                payment_id: PaymentId(r.u64()?),
                attempt: r.u8()?,
                result: r.result()?,
            },
            otag::RECON => {
                let acquirer = AcquirerId(r.u16()?);
                let settled_net = r.u64()?;
                let fees = r.u64()?;
                let refunds_settled = r.u64()?;
                let n = r.count(27)?;
                let mut lines = Vec::with_capacity(n);
                for _ in 0..n {
                    let at = r.pos;
                    let Some(category) = ReconCategory::from_u8(r.u8()?) else {
                        return r.bad(at);
                    };
                    lines.push(ReconLine {
                        category,
                        payment_id: PaymentId(r.u64()?),
                        kind: r.clearing_kind()?,
                        reference: r.u8()?,
                        amount: r.u64()?,
                        expected: r.u64()?,
                    });
                }
                Output::Reconciliation(ReconReport {
                    acquirer,
                    lines,
                    settled_net,
                    fees,
                    refunds_settled,
                })
            }
            otag::DISPUTE => {
                let payment_id = PaymentId(r.u64()?);
                let at = r.pos;
                let Some(state) = DisputeState::from_u8(r.u8()?) else {
                    return r.bad(at);
                };
                Output::Dispute {
                    payment_id,
                    state,
                    amount: r.u64()?,
                }
            }
            otag::IGNORED => {
                let payment_id = PaymentId(r.u64()?);
                let at = r.pos;
                let Some(why) = Ignored::from_u8(r.u8()?) else {
                    return r.bad(at);
                };
                Output::Ignored { payment_id, why }
            }
            _ => return r.bad(at),
        };
        r.finish(output)
    }
}
