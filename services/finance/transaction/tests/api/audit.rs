//! Every outcome reaches the audit trail through the outboxes: once each,
//! also when the trail was down while it happened, masked, and in the trace
//! of the request that caused it.

use std::collections::BTreeMap;

use meshwork_proto::meshwork::finance::account::v1 as account_pb;
use meshwork_proto::meshwork::finance::audit::v1 as audit_pb;
use meshwork_proto::meshwork::finance::risk::v1 as risk_pb;
use meshwork_proto::meshwork::finance::transaction::v1 as pb;
use meshwork_testkit::{Backend, on_each_backend, spans_of_trace};
use opentelemetry::trace::SpanKind;

use crate::support::*;

async fn records(trail: &mut Trail, source: &str) -> Vec<audit_pb::AuditRecord> {
    trail
        .query_audit_log(audit_pb::QueryAuditLogRequest {
            source: source.to_owned(),
            page_size: 500,
            ..Default::default()
        })
        .await
        .expect("query audit log")
        .into_inner()
        .records
}

fn actions(records: &[audit_pb::AuditRecord]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for record in records {
        *counts
            .entry(record.event.as_ref().unwrap().action.clone())
            .or_default() += 1;
    }
    counts
}

async fn add_rule(h: &mut Harness, name: &str, score: i32, condition: risk_pb::rule::Condition) {
    h.rules
        .create_rule(risk_pb::CreateRuleRequest {
            request_id: rid(),
            rule: Some(risk_pb::Rule {
                name: name.into(),
                score,
                condition: Some(condition),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
}

on_each_backend!(async fn the_trail_gets_every_event_once_after_an_outage(backend) {
    let mut h = start(&backend).await;
    h.audit_proxy.cut();

    let opened = h.accounts
        .create_account(account_pb::CreateAccountRequest {
            request_id: rid(),
            owner_id: "ann".into(),
            currency: "EUR".into(),
            r#type: account_pb::AccountType::Checking as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    let a = opened.account_id.clone();
    h.accounts
        .deposit(account_pb::DepositRequest { request_id: rid(), account_id: a.clone(), amount: eur(10_000), memo: String::new() })
        .await
        .unwrap();
    let b = funded(&mut h.accounts, "bob", 0).await;
    let mule = funded(&mut h.accounts, "mule", 0).await;
    add_rule(&mut h, "known mule", 100, risk_pb::rule::Condition::Blacklist(risk_pb::Blacklist { account_ids: vec![mule.clone()] })).await;
    add_rule(&mut h, "large", 60, risk_pb::rule::Condition::AmountThreshold(risk_pb::AmountThreshold { currency: "EUR".into(), min_amount_minor: 5_000 })).await;

    let t1 = transfer(&mut h.transfers, transfer_request(&rid(), &a, &b, 100)).await.unwrap();
    transfer(&mut h.transfers, transfer_request(&rid(), &b, &a, 500)).await.unwrap_err();
    transfer(&mut h.transfers, transfer_request(&rid(), &a, &mule, 10)).await.unwrap_err();
    let held = transfer(&mut h.transfers, transfer_request(&rid(), &a, &b, 6_000)).await.unwrap();
    h.transfers
        .approve_transfer(pb::ApproveTransferRequest { request_id: rid(), transfer_id: held.transfer_id.clone(), note: "ok".into() })
        .await
        .unwrap();
    reverse(&mut h.transfers, &rid(), &t1.transfer_id).await.unwrap();
    assert!(records(&mut h.trail, "").await.is_empty(), "nothing reached the trail while it was cut off");

    h.audit_proxy.restore();
    let expected_transfers = BTreeMap::from([
        ("transfer.approved".to_owned(), 1),
        ("transfer.failed".to_owned(), 1),
        ("transfer.held_for_review".to_owned(), 1),
        ("transfer.posted".to_owned(), 2),
        ("transfer.rejected".to_owned(), 1),
        ("transfer.reversed".to_owned(), 1),
    ]);
    let expected_accounts = BTreeMap::from([("account.created".to_owned(), 3), ("account.deposited".to_owned(), 1)]);
    let mut trail = h.trail.clone();
    let arrived = eventually(|| {
        let mut trail = trail.clone();
        let (t, a) = (expected_transfers.clone(), expected_accounts.clone());
        async move {
            actions(&records(&mut trail, "finance.transaction").await) == t
                && actions(&records(&mut trail, "finance.account").await) == a
        }
    })
    .await;
    assert!(arrived, "got {:?}", actions(&records(&mut trail, "").await));

    // Once each: no event id twice, and the chain is whole.
    let all = records(&mut trail, "").await;
    let ids: std::collections::BTreeSet<_> = all.iter().map(|r| r.event.as_ref().unwrap().event_id.clone()).collect();
    assert_eq!(ids.len(), all.len());
    let verdict = trail.verify_chain(audit_pb::VerifyChainRequest {}).await.unwrap().into_inner();
    assert!(verdict.intact, "{verdict:?}");
    assert_eq!(verdict.records_checked, all.len() as i64);

    // The account number went in clear and is stored masked.
    let created = all
        .iter()
        .filter_map(|r| r.event.as_ref())
        .find(|e| e.action == "account.created" && e.resource == format!("accounts/{a}"))
        .unwrap();
    let stored = &created.attributes["account_number"];
    assert_eq!(stored, &format!("{}********{}", &opened.account_number[..4], &opened.account_number[12..]));
    assert!(!format!("{all:?}").contains(&opened.account_number), "a clear account number is in the trail");
    let posted = all
        .iter()
        .filter_map(|r| r.event.as_ref())
        .find(|e| e.action == "transfer.posted")
        .unwrap();
    assert_eq!(posted.attributes["amount_minor"], "100");
    assert_eq!(posted.actor, "anonymous");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_transfer_is_one_trace() {
    let mut h = start(&Backend::Embedded).await;
    let a = funded(&mut h.accounts, "ann", 1_000).await;
    let b = funded(&mut h.accounts, "bob", 0).await;
    let trace_id = "5af7651916cd43dd8448eb211c80319c";
    let parent = "b7ad6b7169203331";
    let mut request = tonic::Request::new(transfer_request(&rid(), &a, &b, 10));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{parent}-01").parse().unwrap(),
    );
    request
        .metadata_mut()
        .insert("x-meshwork-subject", "alice@example.com".parse().unwrap());
    h.transfers.transfer(request).await.unwrap();

    let wanted = [
        (
            "meshwork.finance.transaction.v1.TransactionService/Transfer",
            SpanKind::Server,
        ),
        (
            "meshwork.finance.risk.v1.RiskService/Assess",
            SpanKind::Client,
        ),
        (
            "meshwork.finance.risk.v1.RiskService/Assess",
            SpanKind::Server,
        ),
        (
            "meshwork.finance.account.v1.AccountService/PostTransfer",
            SpanKind::Client,
        ),
        (
            "meshwork.finance.account.v1.AccountService/PostTransfer",
            SpanKind::Server,
        ),
        // The audit trail takes the event from the service's log inside
        // the same trace.
        ("event.consume", SpanKind::Consumer),
    ];
    let complete = eventually(|| {
        let spans = spans_of_trace(trace_id);
        let all_there = wanted.iter().all(|(name, kind)| {
            spans
                .iter()
                .any(|s| s.name == *name && s.span_kind == *kind)
        });
        std::future::ready(all_there)
    })
    .await;
    let spans = spans_of_trace(trace_id);
    let names: Vec<_> = spans
        .iter()
        .map(|s| (s.name.to_string(), s.span_kind.clone()))
        .collect();
    assert!(complete, "trace {trace_id} has only {names:?}");
    let server = spans
        .iter()
        .find(|s| s.name == wanted[0].0 && s.span_kind == SpanKind::Server)
        .unwrap();
    assert_eq!(server.parent_span_id.to_string(), parent);

    // The trail names who asked, masked like any e-mail address.
    let mut trail = h.trail.clone();
    let named = eventually(|| {
        let mut trail = trail.clone();
        async move {
            records(&mut trail, "finance.transaction")
                .await
                .iter()
                .any(|r| {
                    r.event
                        .as_ref()
                        .is_some_and(|e| e.actor == "a***@example.com" && e.trace_id == trace_id)
                })
        }
    })
    .await;
    assert!(
        named,
        "{:?}",
        records(&mut trail, "finance.transaction").await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_clear_account_number_in_logs_or_spans() {
    let mut h = start(&Backend::Embedded).await;
    let opened = h
        .accounts
        .create_account(account_pb::CreateAccountRequest {
            request_id: rid(),
            owner_id: "ann".into(),
            currency: "EUR".into(),
            r#type: account_pb::AccountType::Checking as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    let number = opened.account_number.clone();
    h.accounts
        .lookup_account(account_pb::LookupAccountRequest {
            account_number: number.clone(),
        })
        .await
        .unwrap();
    h.accounts
        .deposit(account_pb::DepositRequest {
            request_id: rid(),
            account_id: opened.account_id.clone(),
            amount: eur(500),
            memo: String::new(),
        })
        .await
        .unwrap();
    let b = funded(&mut h.accounts, "bob", 0).await;
    transfer(
        &mut h.transfers,
        transfer_request(&rid(), &opened.account_id, &b, 100),
    )
    .await
    .unwrap();
    // A lookup of a number that does not exist is refused without echoing it.
    let mut unknown = number.clone();
    unknown.replace_range(4..5, if &number[4..5] == "9" { "8" } else { "9" });
    let _ = h
        .accounts
        .lookup_account(account_pb::LookupAccountRequest {
            account_number: unknown.clone(),
        })
        .await;
    // Wait until the account's events reached the trail (their relay logs too).
    let trail = h.trail.clone();
    assert!(
        eventually(|| {
            let mut trail = trail.clone();
            async move { records(&mut trail, "finance.account").await.len() >= 3 }
        })
        .await
    );

    let logs = meshwork_runtime::telemetry::captured_logs();
    assert!(
        logs.contains("transfer posted"),
        "the services' logs are captured"
    );
    for clear in [&number, &unknown] {
        assert!(
            !logs.contains(clear.as_str()),
            "a clear account number is in the logs"
        );
    }
    let spans = meshwork_testkit::traces().get_finished_spans().unwrap();
    assert!(!spans.is_empty());
    for span in &spans {
        let texts = span.attributes.iter().map(|kv| kv.value.to_string()).chain(
            span.events
                .iter()
                .flat_map(|e| e.attributes.iter().map(|kv| kv.value.to_string())),
        );
        for text in texts {
            assert!(
                !text.contains(number.as_str()),
                "span {} carries the clear number",
                span.name
            );
        }
    }
}
