//! The ledger's SQL, one text for SQLite and PostgreSQL, returning domain
//! types.
//!
//! Every mutation is one transaction that starts by claiming its request id
//! (a write first, which is also what SQLite needs to queue writers instead
//! of failing them), then changes rows with conditional `UPDATE`s, so the
//! guards (state, currency, funds, version) are checked by the database at
//! the moment of the write, not by an earlier read.

use meshwork_runtime::claimed::{Begun, Claimed};
use meshwork_runtime::db::Database;
use meshwork_runtime::idempotency;
use meshwork_runtime::outbox::{Event, Outbox};
use meshwork_runtime::time::Clock;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::domain::{
    Account, AccountNumber, AccountState, AccountType, Balance, Currency, JournalEntry,
    MAX_BALANCE_MINOR, MoneyMovement, Movement, NewAccount, Posting, StateChange, TransferPosting,
    new_id, settlement_account_id,
};
use crate::error::AccountError;

macro_rules! account_columns {
    () => {
        "account_id, account_number, owner_id, currency, account_type, state, freeze_reason, \
         balance_minor, version, created_at, updated_at"
    };
}

pub use meshwork_runtime::claimed::Applied;

/// What a posting did: the posting, whether now, and the balances it left on
/// both accounts (empty for a replay, whose effects are long committed).
#[derive(Debug, Clone)]
pub struct Posted {
    /// The posting.
    pub posting: Posting,
    /// Now or earlier.
    pub applied: Applied,
    /// The settlement account the posting moved against.
    pub settlement_id: String,
    /// Customer and settlement balances right after the posting.
    pub balances: Vec<Balance>,
}

/// The idempotency key of a client's request id. Clients' ids and the
/// transfer ids finance.transaction posts under share one table; each has a
/// prefix of its own, so that no request id can take a transfer's key.
fn request_key(request_id: &str) -> String {
    format!("request:{request_id}")
}

/// How many fresh account numbers to try before giving up on a collision.
const NUMBER_ATTEMPTS: usize = 5;

/// The ledger's tables.
#[derive(Clone)]
pub struct Store {
    db: Database,
    outbox: Outbox,
    clock: Clock,
}

impl Store {
    /// A store over the service's database (already migrated); account
    /// changes, deposits and withdrawals are reported through `outbox`;
    /// creation and posting times come from `clock`.
    pub fn new(db: Database, outbox: Outbox, clock: Clock) -> Self {
        Self { db, outbox, clock }
    }

    /// Claims a client's request id in a new transaction; a replay answers
    /// what the first request made, read with `read`.
    async fn claim<T>(
        &self,
        request_id: &str,
        fingerprint: &str,
        now: i64,
        read: impl AsyncFnOnce(&mut AnyConnection, &str) -> Result<T, AccountError>,
    ) -> Result<Begun<T>, AccountError> {
        let key = request_key(request_id);
        Claimed::begin_or_replay(&self.db, &self.outbox, &key, fingerprint, now, read).await
    }

    /// Opens an account, once per request id.
    pub async fn create_account(
        &self,
        request_id: &str,
        new: &NewAccount,
    ) -> Result<(Account, Applied), AccountError> {
        let fingerprint = idempotency::fingerprint(&[
            "create_account",
            &new.owner_id,
            new.currency.as_str(),
            new.account_type.as_str(),
        ]);
        let now = self.clock.now_micros();
        let mut claimed = match self
            .claim(request_id, &fingerprint, now, read_account)
            .await?
        {
            Begun::New(claimed) => claimed,
            Begun::Replayed(account) => return Ok((account, Applied::Earlier)),
        };
        let account = Account {
            id: new_id("acc"),
            number: AccountNumber::generate(),
            owner_id: new.owner_id.clone(),
            currency: new.currency.clone(),
            account_type: new.account_type,
            state: AccountState::Active,
            freeze_reason: String::new(),
            balance_minor: 0,
            version: 0,
            created_at: now,
            updated_at: now,
        };
        let account = insert_account(claimed.conn(), account).await?;
        // The full number goes to the audit trail, which masks it at its
        // door; it is never logged here.
        let event = Event::new("account.created", &format!("accounts/{}", account.id), "OK")
            .attr("account_id", &account.id)
            .attr("account_number", account.number.expose())
            .attr("owner_id", &account.owner_id)
            .attr("currency", &account.currency)
            .attr("type", account.account_type.as_str());
        claimed.event(event);
        claimed.commit(&account.id).await?;
        Ok((account, Applied::Now))
    }

    /// One account by id.
    pub async fn account(&self, account_id: &str) -> Result<Account, AccountError> {
        let mut conn = self.db.pool().acquire().await?;
        fetch_account(&mut conn, account_id)
            .await?
            .ok_or_else(|| AccountError::NotFound(account_id.to_owned()))
    }

    /// One account by number.
    pub async fn account_by_number(
        &self,
        number: &AccountNumber,
    ) -> Result<Option<Account>, AccountError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE account_number = $1"
        ))
        .bind(number.expose())
        .fetch_optional(self.db.pool())
        .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    /// Customer accounts after `after` (by id, i.e. creation order), at most
    /// `limit`, optionally of one owner.
    pub async fn list_accounts(
        &self,
        owner_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Account>, AccountError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE ($1 = '' OR owner_id = $1) AND account_id > $2 \
             AND account_type <> 'SETTLEMENT' ORDER BY account_id LIMIT $3"
        ))
        .bind(owner_id)
        .bind(after.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(account_from_row).collect()
    }

    /// Freezes, unfreezes or closes an account, once per request id.
    pub async fn change_state(
        &self,
        request_id: &str,
        account_id: &str,
        change: &StateChange,
    ) -> Result<(Account, Applied), AccountError> {
        let fingerprint = idempotency::fingerprint(&[change.name(), account_id, change.reason()]);
        let now = self.clock.now_micros();
        let mut claimed = match self
            .claim(request_id, &fingerprint, now, read_account)
            .await?
        {
            Begun::New(claimed) => claimed,
            Begun::Replayed(account) => return Ok((account, Applied::Earlier)),
        };
        // The row is locked before it is read (a no-op write: PostgreSQL
        // locks the row, SQLite takes its write lock), so postings that move
        // the balance meanwhile wait instead of making this change lose a
        // version race; and a close sees the balance it decides on.
        sqlx::query("UPDATE accounts SET version = version WHERE account_id = $1")
            .bind(account_id)
            .execute(claimed.conn())
            .await?;
        let account = fetch_account(claimed.conn(), account_id)
            .await?
            .ok_or_else(|| AccountError::NotFound(account_id.to_owned()))?;
        let (state, freeze_reason) = account.transition(change)?;
        let updated = sqlx::query(
            "UPDATE accounts SET state = $1, freeze_reason = $2, version = version + 1, updated_at = $3 \
             WHERE account_id = $4 AND version = $5",
        )
        .bind(state.as_str())
        .bind(&freeze_reason)
        .bind(now)
        .bind(account_id)
        .bind(account.version)
        .execute(claimed.conn())
        .await?;
        if updated.rows_affected() != 1 {
            return Err(AccountError::Conflict(account_id.to_owned()));
        }
        let action = match change {
            StateChange::Freeze { .. } => "account.frozen",
            StateChange::Unfreeze { .. } => "account.unfrozen",
            StateChange::Close => "account.closed",
        };
        let event = Event::new(action, &format!("accounts/{account_id}"), "OK")
            .attr("account_id", account_id)
            .attr("reason", change.reason());
        claimed.event(event);
        claimed.commit(account_id).await?;
        let account = Account {
            state,
            freeze_reason,
            version: account.version + 1,
            updated_at: now,
            ..account
        };
        Ok((account, Applied::Now))
    }

    /// Moves money between a customer account and its currency's settlement
    /// account as one balanced posting, once per request id.
    pub async fn post(
        &self,
        request_id: &str,
        movement: &MoneyMovement,
    ) -> Result<Posted, AccountError> {
        retrying_races(|| self.attempt_post(request_id, movement)).await
    }

    async fn attempt_post(
        &self,
        request_id: &str,
        movement: &MoneyMovement,
    ) -> Result<Posted, AccountError> {
        let amount = movement.amount_minor.to_string();
        let fingerprint = idempotency::fingerprint(&[
            movement.movement.as_str(),
            &movement.account_id,
            movement.currency.as_str(),
            &amount,
            &movement.memo,
        ]);
        let now = self.clock.now_micros();
        let mut claimed = match self
            .claim(request_id, &fingerprint, now, read_posting)
            .await?
        {
            Begun::New(claimed) => claimed,
            Begun::Replayed(posting) => {
                let settlement_id = settlement_account_id(&posting.currency);
                return Ok(Posted {
                    posting,
                    applied: Applied::Earlier,
                    settlement_id,
                    balances: Vec::new(),
                });
            }
        };
        let settlement_id =
            ensure_settlement_account(claimed.conn(), &movement.currency, now).await?;
        let delta = match movement.movement {
            Movement::Deposit => movement.amount_minor,
            Movement::Withdrawal => -movement.amount_minor,
        };

        // Rows are always locked customer first, settlement second ("acc_" <
        // "stl_"): one order for every posting, so postings never deadlock.
        // The guards make the database refuse what the domain would refuse;
        // when it does, the domain says why.
        let customer = sqlx::query(
            "UPDATE accounts SET balance_minor = balance_minor + $1, version = version + 1, updated_at = $2 \
             WHERE account_id = $3 AND state = 'ACTIVE' AND currency = $4 AND account_type <> 'SETTLEMENT' \
             AND balance_minor + $1 >= 0 AND balance_minor + $1 <= $5 RETURNING balance_minor, version",
        )
        .bind(delta)
        .bind(now)
        .bind(&movement.account_id)
        .bind(movement.currency.as_str())
        .bind(MAX_BALANCE_MINOR)
        .fetch_optional(claimed.conn())
        .await?;
        let Some(customer) = customer else {
            return Err(refusal(claimed.conn(), movement).await);
        };
        let balance_after_minor: i64 = customer.try_get("balance_minor")?;
        let customer_version: i64 = customer.try_get("version")?;

        let settlement = sqlx::query(
            "UPDATE accounts SET balance_minor = balance_minor - $1, version = version + 1, updated_at = $2 \
             WHERE account_id = $3 AND balance_minor - $1 >= -$4 AND balance_minor - $1 <= $4 \
             RETURNING balance_minor, version",
        )
        .bind(delta)
        .bind(now)
        .bind(&settlement_id)
        .bind(MAX_BALANCE_MINOR)
        .fetch_optional(claimed.conn())
        .await?
        .ok_or_else(|| AccountError::BalanceLimit { account_id: settlement_id.clone() })?;
        let balances = vec![
            Balance {
                account_id: movement.account_id.clone(),
                currency: movement.currency.clone(),
                balance_minor: balance_after_minor,
                version: customer_version,
            },
            Balance {
                account_id: settlement_id.clone(),
                currency: movement.currency.clone(),
                balance_minor: settlement.try_get("balance_minor")?,
                version: settlement.try_get("version")?,
            },
        ];

        // Taken after the row locks, so journal times follow the order in
        // which the balances changed (statements cut periods by time).
        let posted_at = self.clock.now_micros();
        let posting = Posting {
            id: new_id("pst"),
            kind: movement.movement.as_str().to_owned(),
            account_id: movement.account_id.clone(),
            currency: movement.currency.clone(),
            amount_minor: movement.amount_minor,
            memo: movement.memo.clone(),
            balance_after_minor,
            counterparty_account_id: String::new(),
            counterparty_balance_after_minor: 0,
            created_at: posted_at,
        };
        insert_posting(
            claimed.conn(),
            &posting,
            [
                Entry {
                    account_id: &movement.account_id,
                    amount_minor: delta,
                    balance_after_minor: balances[0].balance_minor,
                },
                Entry {
                    account_id: &settlement_id,
                    amount_minor: -delta,
                    balance_after_minor: balances[1].balance_minor,
                },
            ],
        )
        .await?;
        let action = match movement.movement {
            Movement::Deposit => "account.deposited",
            Movement::Withdrawal => "account.withdrawn",
        };
        let event = Event::new(action, &format!("accounts/{}", movement.account_id), "OK")
            .attr("account_id", &movement.account_id)
            .attr("amount_minor", movement.amount_minor)
            .attr("currency", &movement.currency)
            .attr("posting_id", &posting.id)
            .attr("memo", &movement.memo);
        claimed.event(event);
        claimed.commit(&posting.id).await?;
        Ok(Posted {
            posting,
            applied: Applied::Now,
            settlement_id,
            balances,
        })
    }

    /// Applies both legs of a transfer as one posting, once per transfer id.
    ///
    /// The outcome is final either way: a refusal (no funds, frozen, ...) is
    /// remembered under the transfer id too, so a late duplicate of an
    /// earlier attempt cannot succeed after the caller was told "refused".
    pub async fn transfer(&self, transfer: &TransferPosting) -> Result<Posted, AccountError> {
        let amount = transfer.amount_minor.to_string();
        let fingerprint = idempotency::fingerprint(&[
            transfer.kind.as_str(),
            &transfer.from_account_id,
            &transfer.to_account_id,
            transfer.currency.as_str(),
            &amount,
            &transfer.memo,
        ]);
        // Transfer ids live in the same key table as request ids: a prefix
        // keeps the two namespaces apart.
        let key = format!("transfer:{}", transfer.transfer_id);
        let refused =
            match retrying_races(|| self.attempt_transfer(transfer, &key, &fingerprint)).await {
                Err(refused) => refused,
                posted => return posted,
            };
        let record = match (&refused, refused.record()) {
            // Replayed from the table: already remembered.
            (AccountError::Recorded { .. }, _) | (_, None) => return Err(refused),
            (_, Some(record)) => record,
        };
        let mut tx = self.db.pool().begin().await?;
        let stored = idempotency::remember(
            &mut tx,
            &key,
            &fingerprint,
            &record,
            self.clock.now_micros(),
        )
        .await?;
        let outcome = self.replay_transfer(&mut tx, &stored).await;
        tx.commit().await?;
        outcome
    }

    /// What an earlier attempt of a transfer ended with: its posting or its
    /// refusal.
    async fn replay_transfer(
        &self,
        tx: &mut AnyConnection,
        stored: &str,
    ) -> Result<Posted, AccountError> {
        if let Some(refused) = AccountError::from_record(stored) {
            return Err(refused);
        }
        let posting = fetch_posting(tx, stored)
            .await?
            .ok_or_else(|| missing_result(stored))?;
        Ok(Posted {
            posting,
            applied: Applied::Earlier,
            settlement_id: String::new(),
            balances: Vec::new(),
        })
    }

    async fn attempt_transfer(
        &self,
        transfer: &TransferPosting,
        key: &str,
        fingerprint: &str,
    ) -> Result<Posted, AccountError> {
        let now = self.clock.now_micros();
        let mut claimed = Claimed::begin(&self.db, &self.outbox, key, fingerprint, now).await?;
        if let Some(stored) = claimed.replayed() {
            let outcome = self.replay_transfer(claimed.conn(), &stored).await;
            claimed.finish().await?;
            return outcome;
        }

        // Both legs are guarded updates, in id order (see
        // `TransferPosting::lock_order`); the debit's guard keeps the balance
        // from going negative, the credit's keeps it under the limit.
        let mut balances = Vec::with_capacity(2);
        for (account_id, delta) in transfer.lock_order() {
            let row = sqlx::query(
                "UPDATE accounts SET balance_minor = balance_minor + $1, version = version + 1, updated_at = $2 \
                 WHERE account_id = $3 AND state = 'ACTIVE' AND currency = $4 AND account_type <> 'SETTLEMENT' \
                 AND balance_minor + $1 >= 0 AND balance_minor + $1 <= $5 RETURNING balance_minor, version",
            )
            .bind(delta)
            .bind(now)
            .bind(account_id)
            .bind(transfer.currency.as_str())
            .bind(MAX_BALANCE_MINOR)
            .fetch_optional(claimed.conn())
            .await?;
            let Some(row) = row else {
                // Judged outside this transaction: inside it, a first leg
                // already applied would distort the second's verdict.
                claimed.rollback().await?;
                let mut conn = self.db.pool().acquire().await?;
                return Err(transfer_refusal(&mut conn, transfer).await);
            };
            balances.push(Balance {
                account_id: account_id.to_owned(),
                currency: transfer.currency.clone(),
                balance_minor: row.try_get("balance_minor")?,
                version: row.try_get("version")?,
            });
        }
        let after = |id: &str| {
            balances
                .iter()
                .find(|b| b.account_id == id)
                .map_or(0, |b| b.balance_minor)
        };
        let posted_at = self.clock.now_micros();
        let posting = Posting {
            id: new_id("pst"),
            kind: transfer.kind.as_str().to_owned(),
            account_id: transfer.from_account_id.clone(),
            counterparty_account_id: transfer.to_account_id.clone(),
            currency: transfer.currency.clone(),
            amount_minor: transfer.amount_minor,
            memo: transfer.memo.clone(),
            balance_after_minor: after(&transfer.from_account_id),
            counterparty_balance_after_minor: after(&transfer.to_account_id),
            created_at: posted_at,
        };
        insert_posting(
            claimed.conn(),
            &posting,
            [
                Entry {
                    account_id: &transfer.from_account_id,
                    amount_minor: -transfer.amount_minor,
                    balance_after_minor: posting.balance_after_minor,
                },
                Entry {
                    account_id: &transfer.to_account_id,
                    amount_minor: transfer.amount_minor,
                    balance_after_minor: posting.counterparty_balance_after_minor,
                },
            ],
        )
        .await?;
        claimed.commit(&posting.id).await?;
        Ok(Posted {
            posting,
            applied: Applied::Now,
            settlement_id: String::new(),
            balances,
        })
    }

    /// Balances of `account_ids` from one statement, so one snapshot: the
    /// values are consistent with each other. `NotFound` names the first
    /// missing id.
    pub async fn balances(&self, account_ids: &[String]) -> Result<Vec<Balance>, AccountError> {
        let placeholders: Vec<String> = (1..=account_ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT account_id, currency, balance_minor, version FROM accounts WHERE account_id IN ({})",
            placeholders.join(", ")
        );
        // Only generated placeholders are formatted into the text.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in account_ids {
            query = query.bind(id);
        }
        let rows = query.fetch_all(self.db.pool()).await?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get("account_id")?;
            let balance = Balance {
                account_id: id.clone(),
                currency: currency_of(row)?,
                balance_minor: row.try_get("balance_minor")?,
                version: row.try_get("version")?,
            };
            found.insert(id, balance);
        }
        account_ids
            .iter()
            .map(|id| {
                found
                    .get(id)
                    .cloned()
                    .ok_or_else(|| AccountError::NotFound(id.clone()))
            })
            .collect()
    }

    /// The balance straight from the database.
    pub async fn balance(&self, account_id: &str) -> Result<Balance, AccountError> {
        let row = sqlx::query(
            "SELECT currency, balance_minor, version FROM accounts WHERE account_id = $1",
        )
        .bind(account_id)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or_else(|| AccountError::NotFound(account_id.to_owned()))?;
        Ok(Balance {
            account_id: account_id.to_owned(),
            currency: currency_of(&row)?,
            balance_minor: row.try_get("balance_minor")?,
            version: row.try_get("version")?,
        })
    }

    /// Journal entries of an account in `period` (from, to: microseconds)
    /// before `before` (newest first), at most `limit`.
    pub async fn journal(
        &self,
        account_id: &str,
        period: (Option<i64>, Option<i64>),
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<JournalEntry>, AccountError> {
        self.account(account_id).await?;
        let rows = sqlx::query(
            "SELECT entry_id, posting_id, account_id, currency, amount_minor, kind, balance_after_minor, created_at \
             FROM journal_entries WHERE account_id = $1 AND ($2 = '' OR entry_id < $2) \
             AND created_at >= $3 AND created_at < $4 ORDER BY entry_id DESC LIMIT $5",
        )
        .bind(account_id)
        .bind(before.unwrap_or(""))
        .bind(period.0.unwrap_or(i64::MIN))
        .bind(period.1.unwrap_or(i64::MAX))
        .bind(limit as i64)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(JournalEntry {
                    id: row.try_get("entry_id")?,
                    posting_id: row.try_get("posting_id")?,
                    account_id: row.try_get("account_id")?,
                    currency: currency_of(row)?,
                    amount_minor: row.try_get("amount_minor")?,
                    kind: row.try_get("kind")?,
                    balance_after_minor: row.try_get("balance_after_minor")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }
}

/// How often a posting is tried again after losing a race with another
/// posting: its guard failed although the account passes when read
/// afterwards (the other posting moved the balance in between). Nothing was
/// written, so trying again is safe; the bound only stops a livelock.
const RACE_RETRIES: usize = 8;

/// Runs `attempt` until it does not end in a lost race
/// ([`AccountError::Conflict`]), at most [`RACE_RETRIES`] more times.
async fn retrying_races<T, F, Fut>(mut attempt: F) -> Result<T, AccountError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, AccountError>>,
{
    let mut raced = 0;
    loop {
        match attempt().await {
            Err(AccountError::Conflict(_)) if raced < RACE_RETRIES => raced += 1,
            outcome => return outcome,
        }
    }
}

/// One journal line to write: a signed amount on an account and the
/// account's balance right after it.
struct Entry<'a> {
    account_id: &'a str,
    amount_minor: i64,
    balance_after_minor: i64,
}

/// Writes a posting and its journal entries (which must sum to zero).
async fn insert_posting(
    tx: &mut AnyConnection,
    posting: &Posting,
    entries: [Entry<'_>; 2],
) -> Result<(), AccountError> {
    debug_assert_eq!(entries.iter().map(|e| e.amount_minor).sum::<i64>(), 0);
    sqlx::query(
        "INSERT INTO postings (posting_id, kind, account_id, currency, amount_minor, memo, \
         balance_after_minor, counterparty_account_id, counterparty_balance_after_minor, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&posting.id)
    .bind(&posting.kind)
    .bind(&posting.account_id)
    .bind(posting.currency.as_str())
    .bind(posting.amount_minor)
    .bind(&posting.memo)
    .bind(posting.balance_after_minor)
    .bind(&posting.counterparty_account_id)
    .bind(posting.counterparty_balance_after_minor)
    .bind(posting.created_at)
    .execute(&mut *tx)
    .await?;
    for entry in entries {
        sqlx::query(
            "INSERT INTO journal_entries (entry_id, posting_id, account_id, currency, amount_minor, kind, \
             balance_after_minor, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(new_id("ent"))
        .bind(&posting.id)
        .bind(entry.account_id)
        .bind(posting.currency.as_str())
        .bind(entry.amount_minor)
        .bind(&posting.kind)
        .bind(entry.balance_after_minor)
        .bind(posting.created_at)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Why a guarded transfer leg matched no row: the debit side is checked
/// first, so a transfer from an empty account to a frozen one reports the
/// sender's problem.
async fn transfer_refusal(tx: &mut AnyConnection, transfer: &TransferPosting) -> AccountError {
    for (account_id, debit) in [
        (&transfer.from_account_id, true),
        (&transfer.to_account_id, false),
    ] {
        let account = match fetch_account(tx, account_id).await {
            Ok(Some(account)) => account,
            Ok(None) => return AccountError::NotFound(account_id.clone()),
            Err(error) => return error,
        };
        let verdict = match debit {
            true => account.check_debit(&transfer.currency, transfer.amount_minor),
            false => account.check_credit(&transfer.currency, transfer.amount_minor),
        };
        if let Err(refused) = verdict {
            return refused;
        }
    }
    AccountError::Conflict(transfer.from_account_id.clone())
}

/// Why a guarded posting update matched no row, in the domain's words.
async fn refusal(tx: &mut AnyConnection, movement: &MoneyMovement) -> AccountError {
    let account = match fetch_account(tx, &movement.account_id).await {
        Ok(Some(account)) => account,
        Ok(None) => return AccountError::NotFound(movement.account_id.clone()),
        Err(error) => return error,
    };
    let verdict = match movement.movement {
        Movement::Deposit => account.check_credit(&movement.currency, movement.amount_minor),
        Movement::Withdrawal => account.check_debit(&movement.currency, movement.amount_minor),
    };
    match verdict {
        Err(refused) => refused,
        // The guard failed but the account now passes: it changed between.
        Ok(()) => AccountError::Conflict(movement.account_id.clone()),
    }
}

const INSERT_ACCOUNT: &str = "INSERT INTO accounts (account_id, account_number, owner_id, currency, \
     account_type, state, freeze_reason, balance_minor, version, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

fn bind_account<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    account: &'q Account,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        .bind(&account.id)
        .bind(account.number.expose())
        .bind(&account.owner_id)
        .bind(account.currency.as_str())
        .bind(account.account_type.as_str())
        .bind(account.state.as_str())
        .bind(&account.freeze_reason)
        .bind(account.balance_minor)
        .bind(account.version)
        .bind(account.created_at)
        .bind(account.updated_at)
}

async fn insert_account(
    tx: &mut AnyConnection,
    mut account: Account,
) -> Result<Account, AccountError> {
    for _ in 0..NUMBER_ATTEMPTS {
        let sql = concat_sql(INSERT_ACCOUNT, " ON CONFLICT (account_number) DO NOTHING");
        let inserted = bind_account(sqlx::query(sqlx::AssertSqlSafe(sql)), &account)
            .execute(&mut *tx)
            .await?;
        if inserted.rows_affected() == 1 {
            return Ok(account);
        }
        // A number collision (1 in 10^11 per pair): draw another.
        account.number = AccountNumber::generate();
    }
    Err(AccountError::internal(
        "could not allocate a unique account number".to_owned(),
    ))
}

/// Creates the settlement account of `currency` on first use. Two first
/// postings in a new currency may race to create it: the loser's insert waits
/// for the winner's and then does nothing, and both post against it.
async fn ensure_settlement_account(
    tx: &mut AnyConnection,
    currency: &Currency,
    now: i64,
) -> Result<String, AccountError> {
    let id = settlement_account_id(currency);
    if fetch_account(tx, &id).await?.is_none() {
        let account = Account {
            id: id.clone(),
            number: AccountNumber::generate(),
            owner_id: "meshwork".to_owned(),
            currency: currency.clone(),
            account_type: AccountType::Settlement,
            state: AccountState::Active,
            freeze_reason: String::new(),
            balance_minor: 0,
            version: 0,
            created_at: now,
            updated_at: now,
        };
        let sql = concat_sql(INSERT_ACCOUNT, " ON CONFLICT (account_id) DO NOTHING");
        bind_account(sqlx::query(sqlx::AssertSqlSafe(sql)), &account)
            .execute(&mut *tx)
            .await?;
    }
    Ok(id)
}

/// Static SQL pieces joined; never user input.
fn concat_sql(a: &'static str, b: &'static str) -> String {
    format!("{a}{b}")
}

/// The account a replayed request made.
async fn read_account(conn: &mut AnyConnection, id: &str) -> Result<Account, AccountError> {
    fetch_account(conn, id)
        .await?
        .ok_or_else(|| missing_result(id))
}

/// The posting a replayed request made.
async fn read_posting(conn: &mut AnyConnection, id: &str) -> Result<Posting, AccountError> {
    fetch_posting(conn, id)
        .await?
        .ok_or_else(|| missing_result(id))
}

async fn fetch_account(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Option<Account>, AccountError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        account_columns!(),
        " FROM accounts WHERE account_id = $1"
    ))
    .bind(account_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(account_from_row).transpose()
}

async fn fetch_posting(
    conn: &mut AnyConnection,
    posting_id: &str,
) -> Result<Option<Posting>, AccountError> {
    let row = sqlx::query(
        "SELECT posting_id, kind, account_id, currency, amount_minor, memo, balance_after_minor, \
         counterparty_account_id, counterparty_balance_after_minor, created_at \
         FROM postings WHERE posting_id = $1",
    )
    .bind(posting_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(Posting {
        id: row.try_get("posting_id")?,
        kind: row.try_get("kind")?,
        account_id: row.try_get("account_id")?,
        currency: currency_of(&row)?,
        amount_minor: row.try_get("amount_minor")?,
        memo: row.try_get("memo")?,
        balance_after_minor: row.try_get("balance_after_minor")?,
        counterparty_account_id: row.try_get("counterparty_account_id")?,
        counterparty_balance_after_minor: row.try_get("counterparty_balance_after_minor")?,
        created_at: row.try_get("created_at")?,
    }))
}

fn account_from_row(row: &AnyRow) -> Result<Account, AccountError> {
    let number: String = row.try_get("account_number")?;
    let account_type: String = row.try_get("account_type")?;
    let state: String = row.try_get("state")?;
    Ok(Account {
        id: row.try_get("account_id")?,
        number: AccountNumber::parse(&number).map_err(|e| corrupt("account_number", e))?,
        owner_id: row.try_get("owner_id")?,
        currency: currency_of(row)?,
        account_type: AccountType::parse(&account_type)
            .ok_or_else(|| corrupt("account_type", &account_type))?,
        state: AccountState::parse(&state).ok_or_else(|| corrupt("state", &state))?,
        freeze_reason: row.try_get("freeze_reason")?,
        balance_minor: row.try_get("balance_minor")?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn currency_of(row: &AnyRow) -> Result<Currency, AccountError> {
    let code: String = row.try_get("currency")?;
    Currency::parse(&code).ok_or_else(|| corrupt("currency", &code))
}

fn corrupt(column: &str, detail: &str) -> AccountError {
    AccountError::internal(format!("stored {column} is invalid: {detail}"))
}

fn missing_result(id: &str) -> AccountError {
    AccountError::internal(format!("idempotency key points at missing result {id}"))
}
