//! Statements: opening balance, every movement with its running balance and
//! its transfer, closing balance, for any period.

use meshwork_proto::meshwork::finance::transaction::v1 as pb;
use meshwork_testkit::on_each_backend;
use tonic::Code;

use crate::support::*;

fn period(
    account_id: &str,
    start: Option<prost_types::Timestamp>,
    end: Option<prost_types::Timestamp>,
) -> pb::GetStatementRequest {
    pb::GetStatementRequest {
        account_id: account_id.to_owned(),
        start_time: start,
        end_time: end,
    }
}

fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

fn minor(money: &Option<meshwork_proto::meshwork::r#type::v1::Money>) -> i64 {
    money.as_ref().unwrap().amount_minor
}

on_each_backend!(async fn a_statement_adds_up_and_names_each_transfer(backend) {
    let mut h = start(&backend).await;
    let a = funded(&mut h.accounts, "ann", 1_000).await;
    let b = funded(&mut h.accounts, "bob", 500).await;
    let out = transfer(&mut h.transfers, transfer_request(&rid(), &a, &b, 300)).await.unwrap();
    let back = transfer(&mut h.transfers, transfer_request(&rid(), &b, &a, 100)).await.unwrap();
    reverse(&mut h.transfers, &rid(), &out.transfer_id).await.unwrap();

    let whole = h.transfers.get_statement(period(&a, ts(0), ts(4_000_000_000))).await.unwrap().into_inner();
    assert_eq!(minor(&whole.opening_balance), 0);
    let lines: Vec<(String, i64, i64, String, String)> = whole
        .lines
        .iter()
        .map(|l| (l.kind.clone(), minor(&l.amount), minor(&l.balance_after), l.transfer_id.clone(), l.counterparty_account_id.clone()))
        .collect();
    assert_eq!(
        lines,
        [
            ("DEPOSIT".to_owned(), 1_000, 1_000, String::new(), String::new()),
            ("TRANSFER".to_owned(), -300, 700, out.transfer_id.clone(), b.clone()),
            ("TRANSFER".to_owned(), 100, 800, back.transfer_id.clone(), b.clone()),
            ("REVERSAL".to_owned(), 300, 1_100, out.transfer_id.clone(), b.clone()),
        ]
    );
    assert_eq!((minor(&whole.total_credits), minor(&whole.total_debits)), (1_400, 300));
    assert_eq!(minor(&whole.closing_balance), 1_100);
    assert_eq!(balances(&mut h.accounts, std::slice::from_ref(&a)).await, [1_100]);
    assert_eq!(whole.opening_balance.as_ref().unwrap().currency, "EUR");

    // From the first transfer on: the deposit is in the opening balance.
    let from = whole.lines[1].occur_time;
    let part = h.transfers.get_statement(period(&a, from, ts(4_000_000_000))).await.unwrap().into_inner();
    assert_eq!(minor(&part.opening_balance), 1_000);
    assert_eq!(part.lines.len(), 3);
    // A period before anything happened: empty, zero.
    let before = h.transfers.get_statement(period(&a, ts(0), ts(1))).await.unwrap().into_inner();
    assert!(before.lines.is_empty());
    assert_eq!((minor(&before.opening_balance), minor(&before.closing_balance)), (0, 0));

    let unknown = h.transfers.get_statement(period("acc_nobody", ts(0), ts(1))).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let backwards = h.transfers.get_statement(period(&a, ts(10), ts(1))).await.unwrap_err();
    assert_eq!(violated_fields(&backwards), ["end_time"]);
});
