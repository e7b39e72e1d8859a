//! Assessments: each rule fires at its boundary and not below it, velocity
//! windows slide (in Redis on the real-server variant), and a transfer is
//! assessed and counted once.

use meshwork_proto::meshwork::finance::account::v1 as account_pb;
use meshwork_proto::meshwork::finance::risk::v1 as pb;
use meshwork_testkit::on_each_backend;
use pb::rule::Condition;

use crate::support::*;

on_each_backend!(async fn velocity_counts_across_the_window_edge(backend) {
    let mut h = start(&backend).await;
    // At most 2 transfers per sender per minute, and at most 1000 EUR;
    // score 100 rejects, and rejected transfers are not counted.
    create(&mut h.risk, rule("busy sender", 100, Condition::Velocity(pb::Velocity {
        window_seconds: 60,
        max_count: 2,
        max_amount_minor: 0,
        currency: String::new(),
    })))
    .await;
    let sender = "acc_velocity";
    let decide = |id: &str, seconds: i64, nanos: i32| assess_request(id, sender, 100, at(T0 + seconds, nanos));
    assert_eq!(assess(&mut h.risk, decide("t1", 0, 0)).await.0, pb::Decision::Approve);
    assert_eq!(assess(&mut h.risk, decide("t2", 30, 0)).await.0, pb::Decision::Approve);
    // Just inside the window of t1: a third one is too many.
    let (decision, hits) = assess(&mut h.risk, decide("t3", 59, 999_999_000)).await;
    assert_eq!((decision, hits), (pb::Decision::Reject, vec!["busy sender".to_owned()]));
    // At t1 + 60 s, t1 has left the window: one earlier (t2), this is the 2nd.
    assert_eq!(assess(&mut h.risk, decide("t4", 60, 0)).await.0, pb::Decision::Approve);
    // Other senders have windows of their own.
    assert_eq!(assess(&mut h.risk, assess_request("t5", "acc_other", 100, at(T0 + 60, 0))).await.0, pb::Decision::Approve);
});

on_each_backend!(async fn velocity_sums_stop_at_their_limit(backend) {
    let mut h = start(&backend).await;
    create(&mut h.risk, rule("EUR per hour", 100, Condition::Velocity(pb::Velocity {
        window_seconds: 3600,
        max_count: 0,
        max_amount_minor: 1_000,
        currency: "EUR".into(),
    })))
    .await;
    let sender = "acc_sum";
    assert_eq!(assess(&mut h.risk, assess_request("s1", sender, 600, at(T0, 0))).await.0, pb::Decision::Approve);
    assert_eq!(assess(&mut h.risk, assess_request("s2", sender, 401, at(T0 + 60, 0))).await.0, pb::Decision::Reject);
    assert_eq!(assess(&mut h.risk, assess_request("s3", sender, 400, at(T0 + 60, 0))).await.0, pb::Decision::Approve, "exactly the limit");
    // An hour after s1, only s3 (400) is left in the window.
    assert_eq!(assess(&mut h.risk, assess_request("s4", sender, 600, at(T0 + 3600, 0))).await.0, pb::Decision::Approve);
});

on_each_backend!(async fn a_transfer_is_assessed_and_counted_once(backend) {
    let mut h = start(&backend).await;
    create(&mut h.risk, rule("two a minute", 100, Condition::Velocity(pb::Velocity {
        window_seconds: 60,
        max_count: 2,
        max_amount_minor: 0,
        currency: String::new(),
    })))
    .await;
    let first = h.risk.assess(assess_request("once", "acc_a", 100, at(T0, 0))).await.unwrap().into_inner();
    // Asked again (a retry after a lost answer): the same assessment, not
    // counted again, so the next transfer is still only the second.
    let again = h.risk.assess(assess_request("once", "acc_a", 100, at(T0 + 1, 0))).await.unwrap().into_inner();
    assert_eq!(again, first);
    assert_eq!(assess(&mut h.risk, assess_request("next", "acc_a", 100, at(T0 + 2, 0))).await.0, pb::Decision::Approve);
    let other = h.risk.assess(assess_request("once", "acc_a", 101, None)).await.unwrap_err();
    assert_eq!(reason(&other), "IDEMPOTENCY_KEY_REUSED");

    let listed = h.risk
        .list_assessments(pb::ListAssessmentsRequest { account_id: "acc_a".into(), page_size: 1, page_token: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.assessments[0].transfer_id, "once", "newest id first");
    let rest = h.risk
        .list_assessments(pb::ListAssessmentsRequest { account_id: "acc_a".into(), page_size: 1, page_token: listed.next_page_token })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.assessments[0].transfer_id, "next");
});

on_each_backend!(async fn rules_fire_at_their_boundaries(backend) {
    let mut h = start(&backend).await;
    let opened = h.accounts
        .create_account(account_pb::CreateAccountRequest {
            request_id: rid(),
            owner_id: "newbie".into(),
            currency: "EUR".into(),
            r#type: account_pb::AccountType::Checking as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    let opened_at = opened.create_time.unwrap();
    create(&mut h.risk, rule("large", 10, Condition::AmountThreshold(pb::AmountThreshold { currency: "EUR".into(), min_amount_minor: 10_000 }))).await;
    create(&mut h.risk, rule("new sender", 20, Condition::NewAccount(pb::NewAccount { max_age_seconds: 86_400, min_amount_minor: 500 }))).await;
    create(&mut h.risk, rule("night", 5, Condition::UnusualHour(pb::UnusualHour { start_hour: 0, end_hour: 6, utc_offset_minutes: 480 }))).await;
    create(&mut h.risk, rule("listed", 100, Condition::Blacklist(pb::Blacklist { account_ids: vec!["acc_bad".into()] }))).await;

    let young = |id: &str, amount: i64, seconds_after: i64| {
        assess_request(id, &opened.account_id, amount, at(opened_at.seconds + seconds_after, opened_at.nanos))
    };
    let fired = |hits: Vec<String>| hits;
    assert_eq!(fired(assess(&mut h.risk, young("n1", 500, 60)).await.1), ["new sender"]);
    assert!(assess(&mut h.risk, young("n2", 499, 60)).await.1.is_empty());
    assert!(assess(&mut h.risk, young("n3", 500, 86_400)).await.1.is_empty(), "a day old is not new");

    // 16:00 UTC is 00:00 at +08:00 (inside); 22:00 UTC is 06:00 (outside).
    let old = "acc_old";
    assert_eq!(assess(&mut h.risk, assess_request("h1", old, 1, at(T0 + 6 * 3600, 0))).await.1, ["night"]);
    assert!(assess(&mut h.risk, assess_request("h2", old, 1, at(T0 + 12 * 3600, 0))).await.1.is_empty());
    assert!(assess(&mut h.risk, assess_request("h3", old, 1, at(T0 + 6 * 3600 - 1, 0))).await.1.is_empty(), "23:59:59 local");

    assert_eq!(assess(&mut h.risk, assess_request("a1", old, 10_000, at(T0, 0))).await.1, ["large"]);
    assert!(assess(&mut h.risk, assess_request("a2", old, 9_999, at(T0, 0))).await.1.is_empty());

    let mut listed = assess_request("b1", old, 1, at(T0, 0));
    listed.to_account_id = "acc_bad".into();
    assert_eq!(assess(&mut h.risk, listed).await, (pb::Decision::Reject, vec!["listed".to_owned()]));
});

on_each_backend!(async fn a_burst_cannot_slip_past_a_velocity_limit(backend) {
    let h = start(&backend).await;
    let mut risk = h.risk.clone();
    create(&mut risk, rule("three a minute", 100, Condition::Velocity(pb::Velocity {
        window_seconds: 60,
        max_count: 3,
        max_amount_minor: 0,
        currency: String::new(),
    })))
    .await;
    // Twenty at once from one sender: each sees the others counted.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let mut risk = h.risk.clone();
        tasks.spawn(async move {
            assess(&mut risk, assess_request(&format!("burst-{i}"), "acc_burst", 100, at(T0, 0))).await.0
        });
    }
    let mut approved = 0;
    while let Some(decision) = tasks.join_next().await {
        approved += usize::from(decision.unwrap() == pb::Decision::Approve);
    }
    assert!(approved <= 3, "{approved} approved");
    // Rejected ones were taken back out: once the burst is over, the
    // window holds at most the approved ones.
    let next = assess(&mut risk, assess_request("after", "acc_burst", 100, at(T0 + 1, 0))).await.0;
    assert_eq!(next == pb::Decision::Approve, approved < 3);
});
