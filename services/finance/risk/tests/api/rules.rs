//! Managing rules and the policy.

use meshwork_proto::meshwork::finance::risk::v1 as pb;
use meshwork_testkit::on_each_backend;
use pb::rule::Condition;
use tonic::Code;

use crate::support::*;

fn large_eur(min: i64) -> Condition {
    Condition::AmountThreshold(pb::AmountThreshold {
        currency: "EUR".into(),
        min_amount_minor: min,
    })
}

on_each_backend!(async fn rules_are_created_updated_switched_and_listed(backend) {
    let mut h = start(&backend).await;
    let request_id = rid();
    let request = pb::CreateRuleRequest { request_id: request_id.clone(), rule: Some(rule("large EUR", 60, large_eur(1_000))) };
    let created = h.risk.create_rule(request.clone()).await.unwrap().into_inner().rule.unwrap();
    assert!(created.rule_id.starts_with("rul_"));
    assert_eq!((created.enabled, created.version), (true, 1));
    assert_eq!(h.risk.create_rule(request).await.unwrap().into_inner().rule.unwrap(), created, "replayed");

    let mut change = created.clone();
    change.score = 70;
    change.condition = Some(large_eur(2_000));
    let update = pb::UpdateRuleRequest { rule: Some(change.clone()), request_id: rid() };
    let updated = h.risk.update_rule(update.clone()).await.unwrap().into_inner().rule.unwrap();
    assert_eq!((updated.score, updated.version), (70, 2));
    assert_eq!(updated.condition, Some(large_eur(2_000)));
    // The same request again (its answer was lost): the rule it made, not a
    // version mismatch, and no second change.
    let replayed = h.risk.update_rule(update).await.unwrap().into_inner().rule.unwrap();
    assert_eq!(replayed, updated);
    // The same change quoting the old version in a new request: someone
    // else changed it since.
    let stale = h.risk.update_rule(pb::UpdateRuleRequest { rule: Some(change), request_id: rid() }).await.unwrap_err();
    assert_eq!((stale.code(), reason(&stale)), (Code::Aborted, "VERSION_MISMATCH".into()));


    let off = h.risk.disable_rule(pb::DisableRuleRequest { rule_id: created.rule_id.clone(), request_id: rid() }).await.unwrap().into_inner().rule.unwrap();
    assert!(!off.enabled);
    let (decision, hits) = assess(&mut h.risk, assess_request("trf_1", "acc_a", 5_000, None)).await;
    assert_eq!((decision, hits.len()), (pb::Decision::Approve, 0), "a disabled rule does not fire");
    let enable = pb::EnableRuleRequest { rule_id: created.rule_id.clone(), request_id: rid() };
    let on = h.risk.enable_rule(enable.clone()).await.unwrap().into_inner().rule.unwrap();
    assert_eq!(h.risk.enable_rule(enable).await.unwrap().into_inner().rule.unwrap(), on, "replayed, no new version");
    assert!(on.enabled);
    let (decision, hits) = assess(&mut h.risk, assess_request("trf_2", "acc_a", 5_000, None)).await;
    assert_eq!((decision, hits), (pb::Decision::Review, vec!["large EUR".to_owned()]));

    create(&mut h.risk, rule("second", 10, large_eur(1))).await;
    create(&mut h.risk, rule("third", 10, large_eur(1))).await;
    let page = h.risk.list_rules(pb::ListRulesRequest { page_size: 2, page_token: String::new() }).await.unwrap().into_inner();
    assert_eq!(page.rules.len(), 2);
    let rest = h.risk.list_rules(pb::ListRulesRequest { page_size: 2, page_token: page.next_page_token }).await.unwrap().into_inner();
    assert_eq!(rest.rules.len(), 1);
    assert!(rest.next_page_token.is_empty());

    let missing = h.risk.enable_rule(pb::EnableRuleRequest { rule_id: "rul_nope".into(), request_id: rid() }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let anonymous = h.risk.enable_rule(pb::EnableRuleRequest { rule_id: created.rule_id.clone(), request_id: String::new() }).await.unwrap_err();
    assert_eq!(violated_fields(&anonymous), ["request_id"]);
});

on_each_backend!(async fn bad_rules_name_every_field(backend) {
    let mut h = start(&backend).await;
    let bad = h.risk
        .create_rule(pb::CreateRuleRequest { request_id: rid(), rule: Some(pb::Rule { score: 0, ..Default::default() }) })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&bad), ["rule.name", "rule.score", "rule.condition"]);
    let velocity = Condition::Velocity(pb::Velocity { window_seconds: 0, max_count: -1, max_amount_minor: 5, currency: "eur".into() });
    let bad = h.risk
        .create_rule(pb::CreateRuleRequest { request_id: rid(), rule: Some(rule("v", 10, velocity)) })
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&bad),
        ["rule.velocity.window_seconds", "rule.velocity.max_count", "rule.velocity.currency"]
    );
    let listed = h.risk.list_rules(pb::ListRulesRequest::default()).await.unwrap().into_inner();
    assert!(listed.rules.is_empty(), "nothing was created");
});

on_each_backend!(async fn the_policy_sets_the_thresholds(backend) {
    let mut h = start(&backend).await;
    let policy = h.risk.get_policy(pb::GetPolicyRequest {}).await.unwrap().into_inner().policy.unwrap();
    assert_eq!((policy.review_score, policy.reject_score), (50, 100));
    create(&mut h.risk, rule("large EUR", 60, large_eur(1_000))).await;
    assert_eq!(assess(&mut h.risk, assess_request("trf_1", "acc_a", 1_000, None)).await.0, pb::Decision::Review);

    let strict = pb::Policy { review_score: 30, reject_score: 60 };
    let update = pb::UpdatePolicyRequest { policy: Some(strict), request_id: rid() };
    let stored = h.risk.update_policy(update.clone()).await.unwrap().into_inner().policy.unwrap();
    assert_eq!(stored, strict);
    let other = pb::UpdatePolicyRequest { policy: Some(pb::Policy { review_score: 10, reject_score: 20 }), ..update.clone() };
    let reused = h.risk.update_policy(other).await.unwrap_err();
    assert_eq!(reason(&reused), "IDEMPOTENCY_KEY_REUSED", "one key, another policy");
    assert_eq!(assess(&mut h.risk, assess_request("trf_2", "acc_a", 1_000, None)).await.0, pb::Decision::Reject);

    let bad = h.risk
        .update_policy(pb::UpdatePolicyRequest { policy: Some(pb::Policy { review_score: 80, reject_score: 40 }), request_id: rid() })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad), ["policy.reject_score"]);
});
