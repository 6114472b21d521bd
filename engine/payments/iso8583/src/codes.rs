//! Values of the coded fields we use: response codes (39), network management codes (70),
//! processing codes (3).

/// Field 39 response codes we send and act on (ISO 8583:1987 annex, as the card networks use them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResponseCode {
    /// 00 approved.
    Approved,
    /// 05 do not honour.
    DoNotHonour,
    /// 10 approved for a partial amount (field 54 carries the approved amount).
    PartialApproval,
    /// 12 invalid transaction.
    InvalidTransaction,
    /// 13 invalid amount.
    InvalidAmount,
    /// 14 invalid card number.
    InvalidCardNumber,
    /// 25 unable to locate the original (a reversal of something never seen).
    OriginalNotFound,
    /// 30 format error.
    FormatError,
    /// 51 insufficient funds.
    InsufficientFunds,
    /// 54 expired card.
    ExpiredCard,
    /// 91 issuer or switch inoperative.
    IssuerUnavailable,
    /// 94 duplicate transmission.
    DuplicateTransmission,
    /// 96 system malfunction.
    SystemMalfunction,
}

impl ResponseCode {
    /// Every code above.
    pub const ALL: [ResponseCode; 13] = [
        ResponseCode::Approved,
        ResponseCode::DoNotHonour,
        ResponseCode::PartialApproval,
        ResponseCode::InvalidTransaction,
        ResponseCode::InvalidAmount,
        ResponseCode::InvalidCardNumber,
        ResponseCode::OriginalNotFound,
        ResponseCode::FormatError,
        ResponseCode::InsufficientFunds,
        ResponseCode::ExpiredCard,
        ResponseCode::IssuerUnavailable,
        ResponseCode::DuplicateTransmission,
        ResponseCode::SystemMalfunction,
    ];

    /// The two characters of field 39.
    pub fn code(self) -> &'static str {
        match self {
            ResponseCode::Approved => "00",
            ResponseCode::DoNotHonour => "05",
            ResponseCode::PartialApproval => "10",
            ResponseCode::InvalidTransaction => "12",
            ResponseCode::InvalidAmount => "13",
            ResponseCode::InvalidCardNumber => "14",
            ResponseCode::OriginalNotFound => "25",
            ResponseCode::FormatError => "30",
            ResponseCode::InsufficientFunds => "51",
            ResponseCode::ExpiredCard => "54",
            ResponseCode::IssuerUnavailable => "91",
            ResponseCode::DuplicateTransmission => "94",
            ResponseCode::SystemMalfunction => "96",
        }
    }

    /// Parses field 39.
    pub fn from_code(code: &str) -> Option<ResponseCode> {
        ResponseCode::ALL.into_iter().find(|c| c.code() == code)
    }

    /// 00 and 10: money was (at least partly) approved.
    pub fn is_approval(self) -> bool {
        matches!(self, ResponseCode::Approved | ResponseCode::PartialApproval)
    }

    /// Codes after which the same request may go to another acquirer (after the reversal rule):
    /// the issuer said nothing about the card.
    pub fn is_retryable_elsewhere(self) -> bool {
        matches!(
            self,
            ResponseCode::IssuerUnavailable | ResponseCode::SystemMalfunction
        )
    }
}

/// Field 70 network management codes.
pub mod network {
    /// 001 sign-on.
    pub const SIGN_ON: &str = "001";
    /// 002 sign-off.
    pub const SIGN_OFF: &str = "002";
    /// 301 echo test.
    pub const ECHO: &str = "301";
}

/// Field 3 processing codes (transaction type, from-account, to-account).
pub mod processing {
    /// 000000 purchase (goods and services).
    pub const PURCHASE: &str = "000000";
    /// 200000 refund.
    pub const REFUND: &str = "200000";
    /// 010000 cash.
    pub const CASH: &str = "010000";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_parse_back() {
        for c in ResponseCode::ALL {
            assert_eq!(ResponseCode::from_code(c.code()), Some(c));
            assert_eq!(
                ResponseCode::ALL
                    .iter()
                    .filter(|d| d.code() == c.code())
                    .count(),
                1
            );
        }
        assert_eq!(ResponseCode::from_code("99"), None);
    }
}
