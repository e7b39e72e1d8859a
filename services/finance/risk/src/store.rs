//! Rules, the policy and assessments in SQL (one text for SQLite and
//! PostgreSQL), returning domain types.

use meshwork_runtime::claimed::{Begun, Claimed};
use meshwork_runtime::db::Database;
use meshwork_runtime::idempotency;
use meshwork_runtime::outbox::Outbox;
use meshwork_runtime::time::now_micros;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::domain::{Condition, Currency, Decision, Hit, Policy, Rule, Subject, Verdict, new_id};
use crate::error::RiskError;

macro_rules! rule_columns {
    () => {
        "rule_id, name, enabled, score, version, condition, created_at, updated_at"
    };
}

macro_rules! assessment_columns {
    () => {
        "transfer_id, from_account_id, to_account_id, currency, amount_minor, decision, score, hits, \
         occur_at"
    };
}

/// A stored assessment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// What was assessed.
    pub subject: Subject,
    /// What was decided.
    pub verdict: Verdict,
}

/// The service's tables.
#[derive(Clone)]
pub struct Store {
    db: Database,
    // Risk control reports no events; its claims take an outbox all the same.
    outbox: Outbox,
}

impl Store {
    /// A store over the service's (migrated) database.
    pub fn new(db: Database) -> Self {
        Self {
            db,
            outbox: Outbox::detached(),
        }
    }

    /// Adds a rule, once per request id.
    pub async fn create_rule(
        &self,
        request_id: &str,
        name: &str,
        score: i32,
        condition: &Condition,
    ) -> Result<Rule, RiskError> {
        let json =
            serde_json::to_string(condition).map_err(|e| RiskError::internal(e.to_string()))?;
        let fingerprint =
            idempotency::fingerprint(&["create_rule", name, &score.to_string(), &json]);
        let now = now_micros();
        let begun = Claimed::begin_or_replay(
            &self.db,
            &self.outbox,
            request_id,
            &fingerprint,
            now,
            read_rule,
        );
        let mut claimed = match begun.await? {
            Begun::New(claimed) => claimed,
            Begun::Replayed(rule) => return Ok(rule),
        };
        let rule = Rule {
            id: new_id("rul"),
            name: name.to_owned(),
            enabled: true,
            score,
            version: 1,
            condition: condition.clone(),
            created_at: now,
            updated_at: now,
        };
        sqlx::query(
            "INSERT INTO rules (rule_id, name, enabled, score, version, condition, created_at, updated_at) \
             VALUES ($1, $2, 1, $3, 1, $4, $5, $5)",
        )
        .bind(&rule.id)
        .bind(name)
        .bind(i64::from(score))
        .bind(&json)
        .bind(now)
        .execute(claimed.conn())
        .await?;
        claimed.commit(&rule.id).await?;
        Ok(rule)
    }

    /// Replaces name, score and condition when `version` is current, once
    /// per request id (a replay answers the rule as it is, not a version
    /// mismatch).
    pub async fn update_rule(
        &self,
        request_id: &str,
        rule_id: &str,
        version: i64,
        name: &str,
        score: i32,
        condition: &Condition,
    ) -> Result<Rule, RiskError> {
        let json =
            serde_json::to_string(condition).map_err(|e| RiskError::internal(e.to_string()))?;
        let fingerprint = idempotency::fingerprint(&[
            "update_rule",
            rule_id,
            &version.to_string(),
            name,
            &score.to_string(),
            &json,
        ]);
        let now = now_micros();
        let mut claimed =
            Claimed::begin(&self.db, &self.outbox, request_id, &fingerprint, now).await?;
        if claimed.replayed().is_none() {
            let updated = sqlx::query(
                "UPDATE rules SET name = $1, score = $2, condition = $3, version = version + 1, updated_at = $4 \
                 WHERE rule_id = $5 AND version = $6",
            )
            .bind(name)
            .bind(i64::from(score))
            .bind(&json)
            .bind(now)
            .bind(rule_id)
            .bind(version)
            .execute(claimed.conn())
            .await?;
            if updated.rows_affected() == 0 {
                let current = fetch_rule(claimed.conn(), rule_id)
                    .await?
                    .ok_or_else(|| RiskError::RuleNotFound(rule_id.to_owned()))?;
                return Err(RiskError::VersionMismatch {
                    rule_id: rule_id.to_owned(),
                    current: current.version,
                    quoted: version,
                });
            }
        }
        let rule = fetch_rule(claimed.conn(), rule_id)
            .await?
            .ok_or_else(|| RiskError::RuleNotFound(rule_id.to_owned()))?;
        claimed.commit(rule_id).await?;
        Ok(rule)
    }

    /// Switches a rule on or off (a no-op when it already is), once per
    /// request id.
    pub async fn set_enabled(
        &self,
        request_id: &str,
        rule_id: &str,
        enabled: bool,
    ) -> Result<Rule, RiskError> {
        let verb = if enabled {
            "enable_rule"
        } else {
            "disable_rule"
        };
        let fingerprint = idempotency::fingerprint(&[verb, rule_id]);
        let now = now_micros();
        let mut claimed =
            Claimed::begin(&self.db, &self.outbox, request_id, &fingerprint, now).await?;
        if claimed.replayed().is_none() {
            sqlx::query(
                "UPDATE rules SET enabled = $1, version = version + 1, updated_at = $2 \
                 WHERE rule_id = $3 AND enabled <> $1",
            )
            .bind(i64::from(enabled))
            .bind(now)
            .bind(rule_id)
            .execute(claimed.conn())
            .await?;
        }
        let rule = fetch_rule(claimed.conn(), rule_id)
            .await?
            .ok_or_else(|| RiskError::RuleNotFound(rule_id.to_owned()))?;
        claimed.commit(rule_id).await?;
        Ok(rule)
    }

    /// One rule.
    pub async fn rule(&self, rule_id: &str) -> Result<Rule, RiskError> {
        let mut conn = self.db.pool().acquire().await?;
        fetch_rule(&mut conn, rule_id)
            .await?
            .ok_or_else(|| RiskError::RuleNotFound(rule_id.to_owned()))
    }

    /// Rules after `after` (by id), at most `limit`.
    pub async fn rules(&self, after: Option<&str>, limit: usize) -> Result<Vec<Rule>, RiskError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            rule_columns!(),
            " FROM rules WHERE rule_id > $1 ORDER BY rule_id LIMIT $2"
        ))
        .bind(after.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(rule_from_row).collect()
    }

    /// Every enabled rule and the policy. Two statements: under PostgreSQL's
    /// READ COMMITTED a change between them can pair new rules with the old
    /// policy for one rulebook refresh (at most a second, see the engine).
    pub async fn rulebook(&self) -> Result<(Vec<Rule>, Policy), RiskError> {
        let mut tx = self.db.pool().begin().await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            rule_columns!(),
            " FROM rules WHERE enabled = 1 ORDER BY rule_id"
        ))
        .fetch_all(&mut *tx)
        .await?;
        let rules = rows.iter().map(rule_from_row).collect::<Result<_, _>>()?;
        let policy = fetch_policy(&mut tx).await?;
        tx.commit().await?;
        Ok((rules, policy))
    }

    /// The thresholds.
    pub async fn policy(&self) -> Result<Policy, RiskError> {
        let mut conn = self.db.pool().acquire().await?;
        fetch_policy(&mut conn).await
    }

    /// Replaces the thresholds, once per request id.
    pub async fn set_policy(&self, request_id: &str, policy: &Policy) -> Result<Policy, RiskError> {
        let fingerprint = idempotency::fingerprint(&[
            "update_policy",
            &policy.review_score.to_string(),
            &policy.reject_score.to_string(),
        ]);
        let now = now_micros();
        let mut claimed =
            Claimed::begin(&self.db, &self.outbox, request_id, &fingerprint, now).await?;
        if claimed.replayed().is_none() {
            sqlx::query(
                "UPDATE policy SET review_score = $1, reject_score = $2, updated_at = $3 WHERE policy_id = 1",
            )
            .bind(i64::from(policy.review_score))
            .bind(i64::from(policy.reject_score))
            .bind(now)
            .execute(claimed.conn())
            .await?;
        }
        let stored = fetch_policy(claimed.conn()).await?;
        claimed.commit("policy").await?;
        Ok(stored)
    }

    /// The assessment of a transfer, if it was assessed.
    pub async fn assessment(&self, transfer_id: &str) -> Result<Option<Assessment>, RiskError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            assessment_columns!(),
            " FROM assessments WHERE transfer_id = $1"
        ))
        .bind(transfer_id)
        .fetch_optional(self.db.pool())
        .await?;
        row.as_ref().map(assessment_from_row).transpose()
    }

    /// Stores an assessment unless the transfer has one; returns whether
    /// this one was stored.
    pub async fn record(&self, assessment: &Assessment) -> Result<bool, RiskError> {
        let hits = serde_json::to_string(&assessment.verdict.hits)
            .map_err(|e| RiskError::internal(e.to_string()))?;
        let subject = &assessment.subject;
        let inserted = sqlx::query(
            "INSERT INTO assessments (transfer_id, from_account_id, to_account_id, currency, amount_minor, \
             decision, score, hits, occur_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (transfer_id) DO NOTHING",
        )
        .bind(&subject.transfer_id)
        .bind(&subject.from_account_id)
        .bind(&subject.to_account_id)
        .bind(subject.currency.as_str())
        .bind(subject.amount_minor)
        .bind(assessment.verdict.decision.as_str())
        .bind(i64::from(assessment.verdict.score))
        .bind(&hits)
        .bind(subject.occur_at)
        .bind(now_micros())
        .execute(self.db.pool())
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Assessments (newest first) before `before`, optionally of one account.
    pub async fn assessments(
        &self,
        account_id: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Assessment>, RiskError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            assessment_columns!(),
            " FROM assessments WHERE ($1 = '' OR from_account_id = $1 OR to_account_id = $1) \
             AND ($2 = '' OR transfer_id < $2) ORDER BY transfer_id DESC LIMIT $3"
        ))
        .bind(account_id)
        .bind(before.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(assessment_from_row).collect()
    }
}

/// The rule a replayed request made.
async fn read_rule(conn: &mut AnyConnection, id: &str) -> Result<Rule, RiskError> {
    fetch_rule(conn, id).await?.ok_or_else(|| missing(id))
}

async fn fetch_rule(conn: &mut AnyConnection, rule_id: &str) -> Result<Option<Rule>, RiskError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        rule_columns!(),
        " FROM rules WHERE rule_id = $1"
    ))
    .bind(rule_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(rule_from_row).transpose()
}

async fn fetch_policy(conn: &mut AnyConnection) -> Result<Policy, RiskError> {
    let row = sqlx::query("SELECT review_score, reject_score FROM policy WHERE policy_id = 1")
        .fetch_one(&mut *conn)
        .await?;
    Ok(Policy {
        review_score: small(row.try_get("review_score")?)?,
        reject_score: small(row.try_get("reject_score")?)?,
    })
}

fn rule_from_row(row: &AnyRow) -> Result<Rule, RiskError> {
    let condition: String = row.try_get("condition")?;
    Ok(Rule {
        id: row.try_get("rule_id")?,
        name: row.try_get("name")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        score: small(row.try_get("score")?)?,
        version: row.try_get("version")?,
        condition: serde_json::from_str(&condition)
            .map_err(|e| RiskError::internal(format!("stored condition is invalid: {e}")))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn assessment_from_row(row: &AnyRow) -> Result<Assessment, RiskError> {
    let currency: String = row.try_get("currency")?;
    let decision: String = row.try_get("decision")?;
    let hits: String = row.try_get("hits")?;
    let hits: Vec<Hit> = serde_json::from_str(&hits)
        .map_err(|e| RiskError::internal(format!("stored hits are invalid: {e}")))?;
    Ok(Assessment {
        subject: Subject {
            transfer_id: row.try_get("transfer_id")?,
            from_account_id: row.try_get("from_account_id")?,
            to_account_id: row.try_get("to_account_id")?,
            currency: Currency::parse(&currency)
                .ok_or_else(|| RiskError::internal(format!("stored currency {currency:?}")))?,
            amount_minor: row.try_get("amount_minor")?,
            occur_at: row.try_get("occur_at")?,
        },
        verdict: Verdict {
            decision: Decision::parse(&decision)
                .ok_or_else(|| RiskError::internal(format!("stored decision {decision:?}")))?,
            score: small(row.try_get("score")?)?,
            hits,
        },
    })
}

fn small(value: i64) -> Result<i32, RiskError> {
    i32::try_from(value)
        .map_err(|_| RiskError::internal(format!("stored score {value} out of range")))
}

fn missing(id: &str) -> RiskError {
    RiskError::internal(format!("idempotency key points at missing rule {id}"))
}
