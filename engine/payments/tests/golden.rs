//! Golden byte images of the encodings: a change of layout shows up here as a diff (and must be
//! reflected in docs/payments.md).

mod common;

use common::*;
use sequent_payments::*;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn input_layouts_are_pinned() {
    let mut c = create(2, 0x0102, 1_000, 3);
    c.three_ds = Some(ThreeDsResult {
        eci: 5,
        cavv: [0xcc; 20],
    });
    let cases: Vec<(Input, &str)> = vec![
        (
            Input::CreatePayment(c),
            "01020000000201000000000000000000000000000002010000000000000000000000000000e8030000000000000300000000000000e803000000000000d2030300000000000000000000000000577e873075029210b8260105cccccccccccccccccccccccccccccccccccccccc",
        ),
        (
            Input::Capture {
                merchant: MerchantId(2),
                key: IdemKey(9),
                body_hash: [0xbb; 32],
                payment_id: PaymentId(7),
                amount: 500,
            },
            "020200000009000000000000000000000000000000bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb0700000000000000f401000000000000",
        ),
        (
            Input::AcquirerReply {
                acquirer: AcquirerId(1),
                payment_id: PaymentId(7),
                attempt: 2,
                result: approve(900),
            },
            "060100070000000000000002014131423243338403000000000000",
        ),
        (
            Input::AcquirerTimeout {
                acquirer: AcquirerId(1),
                payment_id: PaymentId(7),
                attempt: 2,
            },
            "070100070000000000000002",
        ),
        (Input::Tick, "0b"),
        (
            Input::ClearingFile {
                acquirer: AcquirerId(2),
                rows: vec![ClearingRow {
                    payment_id: PaymentId(7),
                    reference: 1,
                    kind: ClearingKind::Capture,
                    amount: 500,
                    currency: 978,
                    date: 20231114,
                }],
            },
            "0c02000100000007000000000000000102f401000000000000d203cab33401",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(hex(&input.to_bytes()), want, "{input:?}");
    }
}

#[test]
fn output_layouts_are_pinned() {
    let view = PaymentView {
        payment_id: PaymentId(7),
        merchant: MerchantId(2),
        status: Status::Authorised,
        reason: None,
        decline_code: None,
        amount: 1_000,
        currency: 978,
        authorised: 900,
        captured: 0,
        refunded: 0,
        charged_back: 0,
        last4: 4242,
        acquirer: Some(AcquirerId(1)),
        attempt: 2,
    };
    let cases: Vec<(Output, &str)> = vec![
        (
            Output::Reply {
                merchant: MerchantId(2),
                key: IdemKey(9),
                reply: Reply::Ok(view),
            },
            "01020000000900000000000000000000000000000001070000000000000002000000030000e803000000000000d2038403000000000000000000000000000000000000000000000000000000000000921001010002",
        ),
        (
            Output::Reply {
                merchant: MerchantId(2),
                key: IdemKey(9),
                reply: Reply::Rejected {
                    payment_id: PaymentId(7),
                    reason: Reason::NoRouteAvailable,
                    retry_at: Nanos(0),
                },
            },
            "010200000009000000000000000000000000000000020700000000000000280000000000000000",
        ),
        (
            Output::ToAcquirer {
                acquirer: AcquirerId(1),
                payment_id: PaymentId(7),
                attempt: 1,
                msg: AcquirerRequest::Reverse { amount: 1_000 },
            },
            "03010007000000000000000102e803000000000000",
        ),
        (Output::ArmTimer { at: Nanos(T0) }, "0600002a36fe9c9717"),
    ];
    for (output, want) in cases {
        assert_eq!(hex(&output.to_bytes()), want, "{output:?}");
    }
}
