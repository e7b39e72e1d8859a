//! The compliance report of a period, structured and as CSV.

use meshwork_proto::meshwork::finance::audit::v1 as pb;
use meshwork_testkit::on_each_backend;

use crate::support::*;

fn period(from: i64, to: i64) -> pb::GenerateComplianceReportRequest {
    pb::GenerateComplianceReportRequest {
        start_time: Some(prost_types::Timestamp {
            seconds: T0 + from,
            nanos: 0,
        }),
        end_time: Some(prost_types::Timestamp {
            seconds: T0 + to,
            nanos: 0,
        }),
        large_amount_minor: 1_000_000,
    }
}

on_each_backend!(async fn the_report_sorts_the_period_into_its_sections(backend) {
    let mut h = start(&backend).await;
    let big = [("amount_minor", "1000000"), ("currency", "EUR"), ("from_account_id", "acc_a"), ("to_account_id", "acc_b")];
    record(&mut h.trail, event("e1", "transfer.posted", 10, &big)).await;
    record(&mut h.trail, event("e2", "transfer.posted", 20, &[("amount_minor", "999999")])).await;
    record(&mut h.trail, event("e3", "account.deposited", 30, &[("amount_minor", "5000000"), ("currency", "CNY")])).await;
    record(&mut h.trail, event("e4", "account.frozen", 40, &[("account_id", "acc_c"), ("reason", "court order, case \"7\"")])).await;
    record(&mut h.trail, event("e5", "transfer.rejected", 50, &[("reason", "known mule")])).await;
    record(&mut h.trail, event("e6", "transfer.held_for_review", 60, &[])).await;
    record(&mut h.trail, event("e7", "transfer.declined", 70, &[])).await;
    record(&mut h.trail, event("e8", "payment.failed", 80, &[])).await;
    // Outside the period.
    record(&mut h.trail, event("e9", "account.frozen", 3_600, &[])).await;

    let report = h.trail.generate_compliance_report(period(0, 3_600)).await.unwrap().into_inner();
    let sequences = |lines: &[pb::ReportLine]| lines.iter().map(|l| l.sequence).collect::<Vec<_>>();
    assert_eq!(sequences(&report.large_transactions), [1, 3]);
    assert_eq!(report.large_transactions[0].accounts, "acc_a acc_b");
    assert_eq!(report.large_transactions[1].amount.as_ref().unwrap().currency, "CNY");
    assert_eq!(sequences(&report.frozen_accounts), [4]);
    assert_eq!(sequences(&report.rejected_transfers), [5, 7]);
    assert_eq!(sequences(&report.reviewed_transfers), [6, 7]);
    assert_eq!(sequences(&report.failed_payments), [8]);

    let lines: Vec<&str> = report.csv.lines().collect();
    assert_eq!(lines[0], "section,occur_time,sequence,action,resource,outcome,amount_minor,currency,accounts,detail");
    assert_eq!(lines.len(), 1 + 2 + 1 + 2 + 2 + 1);
    assert!(lines[1].starts_with("large_transaction,2026-11-25T10:00:10Z,1,transfer.posted,things/e1,OK,1000000,EUR,acc_a acc_b,"));
    assert!(report.csv.contains("\"court order, case \"\"7\"\"\""), "quoted per RFC 4180");

    let narrow = h.trail
        .generate_compliance_report(pb::GenerateComplianceReportRequest { large_amount_minor: 2_000_000, ..period(0, 3_600) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sequences(&narrow.large_transactions), [3]);
    let backwards = h.trail.generate_compliance_report(period(10, 0)).await.unwrap_err();
    assert_eq!(backwards.code(), tonic::Code::InvalidArgument);
});
