//! The gRPC face of finance.risk: protobuf ↔ domain conversion and
//! validation, nothing else.

use meshwork_proto::meshwork::finance::risk::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::Money;
use meshwork_runtime::time::{now_micros, to_timestamp};
use meshwork_runtime::validate::{self as checked, next_page_token};
use pb::risk_service_server::RiskService;
use pb::rule::Condition as PbCondition;
use tonic::{Request, Response, Status};

use crate::domain::{Checks, Condition, Decision, Policy, Rule, Subject};
use crate::engine::Engine;
use crate::store::Assessment;

/// Implements `meshwork.finance.risk.v1.RiskService`.
pub struct RiskApi {
    engine: Engine,
}

impl RiskApi {
    /// The service over its engine.
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl RiskService for RiskApi {
    async fn assess(
        &self,
        request: Request<pb::AssessRequest>,
    ) -> Result<Response<pb::AssessResponse>, Status> {
        let r = request.into_inner();
        let (currency, amount_minor) = checked::amount("amount", r.amount.as_ref())?;
        let mut checks = Checks::new();
        let occur_at = checks.timestamp("occur_time", r.occur_time.as_ref());
        checks.finish()?;
        let subject = Subject {
            transfer_id: r.transfer_id,
            from_account_id: r.from_account_id,
            to_account_id: r.to_account_id,
            currency,
            amount_minor,
            occur_at: occur_at.unwrap_or_else(now_micros),
        };
        let assessment = self.engine.assess(subject).await?;
        Ok(Response::new(pb::AssessResponse {
            assessment: Some(assessment_to_pb(&assessment)),
        }))
    }

    async fn list_assessments(
        &self,
        request: Request<pb::ListAssessmentsRequest>,
    ) -> Result<Response<pb::ListAssessmentsResponse>, Status> {
        let r = request.into_inner();
        let page_size = checked::page_size(r.page_size);
        let before = checked::page_token(&r.page_token);

        let mut found = self
            .engine
            .store()
            .assessments(&r.account_id, before.as_deref(), page_size + 1)
            .await?;
        let next_page_token =
            next_page_token(&mut found, page_size, |a| a.subject.transfer_id.clone());
        Ok(Response::new(pb::ListAssessmentsResponse {
            assessments: found.iter().map(assessment_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn create_rule(
        &self,
        request: Request<pb::CreateRuleRequest>,
    ) -> Result<Response<pb::CreateRuleResponse>, Status> {
        let r = request.into_inner();
        let mut checks = Checks::new();
        let rule = r.rule.unwrap_or_default();
        let condition = check_rule(&mut checks, &rule);
        checks.finish()?;
        let condition = condition.expect("checks passed");
        let rule = self
            .engine
            .store()
            .create_rule(&r.request_id, &rule.name, rule.score, &condition)
            .await?;
        self.engine.rules_changed().await;
        Ok(Response::new(pb::CreateRuleResponse {
            rule: Some(rule_to_pb(&rule)),
        }))
    }

    async fn update_rule(
        &self,
        request: Request<pb::UpdateRuleRequest>,
    ) -> Result<Response<pb::UpdateRuleResponse>, Status> {
        let request = request.into_inner();
        let rule = request.rule.unwrap_or_default();
        let mut checks = Checks::new();
        // Required here only (CreateRule assigns both): Rule is one message
        // for both methods, so its contract cannot say it.
        checks.as_field_of::<pb::EnableRuleRequest>("rule.rule_id", "rule_id", &rule.rule_id);
        if rule.version <= 0 {
            checks.fail("rule.version", "is required: the version last read");
        }
        let condition = check_rule(&mut checks, &rule);
        checks.finish()?;
        let condition = condition.expect("checks passed");
        let stored = self
            .engine
            .store()
            .update_rule(
                &request.request_id,
                &rule.rule_id,
                rule.version,
                &rule.name,
                rule.score,
                &condition,
            )
            .await?;
        self.engine.rules_changed().await;
        Ok(Response::new(pb::UpdateRuleResponse {
            rule: Some(rule_to_pb(&stored)),
        }))
    }

    async fn enable_rule(
        &self,
        request: Request<pb::EnableRuleRequest>,
    ) -> Result<Response<pb::EnableRuleResponse>, Status> {
        let request = request.into_inner();
        let rule = self
            .switch(&request.request_id, &request.rule_id, true)
            .await?;
        Ok(Response::new(pb::EnableRuleResponse { rule: Some(rule) }))
    }

    async fn disable_rule(
        &self,
        request: Request<pb::DisableRuleRequest>,
    ) -> Result<Response<pb::DisableRuleResponse>, Status> {
        let request = request.into_inner();
        let rule = self
            .switch(&request.request_id, &request.rule_id, false)
            .await?;
        Ok(Response::new(pb::DisableRuleResponse { rule: Some(rule) }))
    }

    async fn list_rules(
        &self,
        request: Request<pb::ListRulesRequest>,
    ) -> Result<Response<pb::ListRulesResponse>, Status> {
        let r = request.into_inner();
        let page_size = checked::page_size(r.page_size);
        let after = checked::page_token(&r.page_token);

        let mut rules = self
            .engine
            .store()
            .rules(after.as_deref(), page_size + 1)
            .await?;
        let next_page_token = next_page_token(&mut rules, page_size, |rule| rule.id.clone());
        Ok(Response::new(pb::ListRulesResponse {
            rules: rules.iter().map(rule_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn get_policy(
        &self,
        _request: Request<pb::GetPolicyRequest>,
    ) -> Result<Response<pb::GetPolicyResponse>, Status> {
        let policy = self.engine.store().policy().await?;
        Ok(Response::new(pb::GetPolicyResponse {
            policy: Some(policy_to_pb(&policy)),
        }))
    }

    async fn update_policy(
        &self,
        request: Request<pb::UpdatePolicyRequest>,
    ) -> Result<Response<pb::UpdatePolicyResponse>, Status> {
        let request = request.into_inner();
        let policy = request.policy.unwrap_or_default();
        let mut checks = Checks::new();
        if policy.reject_score < policy.review_score {
            checks.fail("policy.reject_score", "must be at least review_score");
        }
        checks.finish()?;
        let stored = self
            .engine
            .store()
            .set_policy(
                &request.request_id,
                &Policy {
                    review_score: policy.review_score,
                    reject_score: policy.reject_score,
                },
            )
            .await?;
        self.engine.rules_changed().await;
        Ok(Response::new(pb::UpdatePolicyResponse {
            policy: Some(policy_to_pb(&stored)),
        }))
    }
}

impl RiskApi {
    async fn switch(
        &self,
        request_id: &str,
        rule_id: &str,
        enabled: bool,
    ) -> Result<pb::Rule, Status> {
        let rule = self
            .engine
            .store()
            .set_enabled(request_id, rule_id, enabled)
            .await?;
        self.engine.rules_changed().await;
        Ok(rule_to_pb(&rule))
    }
}

/// Checks a rule's name, score and condition; the condition when valid.
fn check_rule(checks: &mut Checks, rule: &pb::Rule) -> Option<Condition> {
    // The name, the score and each parameter's range are the contract's.
    let condition = match &rule.condition {
        None => {
            checks.fail(
                "rule.condition",
                "set one of amount_threshold, velocity, blacklist, new_account, unusual_hour",
            );
            return None;
        }
        Some(PbCondition::AmountThreshold(c)) => (
            "rule.amount_threshold",
            Condition::AmountThreshold {
                currency: c.currency.clone(),
                min_amount_minor: c.min_amount_minor,
            },
        ),
        Some(PbCondition::Velocity(c)) => (
            "rule.velocity",
            Condition::Velocity {
                window_seconds: c.window_seconds,
                max_count: c.max_count,
                max_amount_minor: c.max_amount_minor,
                currency: c.currency.clone(),
            },
        ),
        Some(PbCondition::Blacklist(c)) => (
            "rule.blacklist",
            Condition::Blacklist {
                account_ids: c.account_ids.clone(),
            },
        ),
        Some(PbCondition::NewAccount(c)) => (
            "rule.new_account",
            Condition::NewAccount {
                max_age_seconds: c.max_age_seconds,
                min_amount_minor: c.min_amount_minor,
            },
        ),
        Some(PbCondition::UnusualHour(c)) => (
            "rule.unusual_hour",
            Condition::UnusualHour {
                start_hour: c.start_hour,
                end_hour: c.end_hour,
                utc_offset_minutes: c.utc_offset_minutes,
            },
        ),
    };
    condition.1.check(checks, condition.0);
    Some(condition.1)
}

fn rule_to_pb(rule: &Rule) -> pb::Rule {
    let condition = match &rule.condition {
        Condition::AmountThreshold {
            currency,
            min_amount_minor,
        } => PbCondition::AmountThreshold(pb::AmountThreshold {
            currency: currency.clone(),
            min_amount_minor: *min_amount_minor,
        }),
        Condition::Velocity {
            window_seconds,
            max_count,
            max_amount_minor,
            currency,
        } => PbCondition::Velocity(pb::Velocity {
            window_seconds: *window_seconds,
            max_count: *max_count,
            max_amount_minor: *max_amount_minor,
            currency: currency.clone(),
        }),
        Condition::Blacklist { account_ids } => PbCondition::Blacklist(pb::Blacklist {
            account_ids: account_ids.clone(),
        }),
        Condition::NewAccount {
            max_age_seconds,
            min_amount_minor,
        } => PbCondition::NewAccount(pb::NewAccount {
            max_age_seconds: *max_age_seconds,
            min_amount_minor: *min_amount_minor,
        }),
        Condition::UnusualHour {
            start_hour,
            end_hour,
            utc_offset_minutes,
        } => PbCondition::UnusualHour(pb::UnusualHour {
            start_hour: *start_hour,
            end_hour: *end_hour,
            utc_offset_minutes: *utc_offset_minutes,
        }),
    };
    pb::Rule {
        rule_id: rule.id.clone(),
        name: rule.name.clone(),
        enabled: rule.enabled,
        score: rule.score,
        version: rule.version,
        condition: Some(condition),
        create_time: Some(to_timestamp(rule.created_at)),
        update_time: Some(to_timestamp(rule.updated_at)),
    }
}

fn policy_to_pb(policy: &Policy) -> pb::Policy {
    pb::Policy {
        review_score: policy.review_score,
        reject_score: policy.reject_score,
    }
}

fn assessment_to_pb(assessment: &Assessment) -> pb::Assessment {
    let subject = &assessment.subject;
    let verdict = &assessment.verdict;
    pb::Assessment {
        transfer_id: subject.transfer_id.clone(),
        from_account_id: subject.from_account_id.clone(),
        to_account_id: subject.to_account_id.clone(),
        amount: Some(Money {
            currency: subject.currency.to_string(),
            amount_minor: subject.amount_minor,
        }),
        decision: match verdict.decision {
            Decision::Approve => pb::Decision::Approve,
            Decision::Review => pb::Decision::Review,
            Decision::Reject => pb::Decision::Reject,
        } as i32,
        score: verdict.score,
        hits: verdict
            .hits
            .iter()
            .map(|hit| pb::Hit {
                rule_id: hit.rule_id.clone(),
                name: hit.name.clone(),
                score: hit.score,
                reason: hit.reason.clone(),
            })
            .collect(),
        occur_time: Some(to_timestamp(subject.occur_at)),
    }
}
