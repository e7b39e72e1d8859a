//! Balance reads through the multi-level cache (in-process → Redis →
//! database). Every committed balance change replaces the cached balance
//! with the new one, versioned by the account's version, so a reader that
//! loaded the old balance cannot put it back (see `meshwork_runtime::cache`).

use codec::{decode, encode};
use meshwork_runtime::cache::Cache;

use crate::domain::Balance;
use crate::error::AccountError;
use crate::store::Store;

/// Balances, cached.
#[derive(Clone)]
pub struct Balances {
    store: Store,
    cache: Cache,
}

impl Balances {
    /// Reads through `cache` to `store`.
    pub fn new(store: Store, cache: Cache) -> Self {
        Self { store, cache }
    }

    /// The balance of `account_id`, from the nearest level that has it.
    pub async fn get(&self, account_id: &str) -> Result<Balance, AccountError> {
        let key = key(account_id);
        if let Some(balance) = self
            .cache
            .get(&key)
            .await
            .and_then(|bytes| decode(account_id, &bytes))
        {
            return Ok(balance);
        }
        let balance = self.store.balance(account_id).await?;
        self.cache
            .store(&key, balance.version, encode(&balance).into())
            .await;
        Ok(balance)
    }

    /// Replaces the cached balance with one just committed, in every replica.
    pub async fn changed(&self, balance: &Balance) {
        self.cache
            .replace(
                &key(&balance.account_id),
                balance.version,
                encode(balance).into(),
            )
            .await;
    }

    /// Drops the cached balance of `account_id` everywhere.
    pub async fn invalidate(&self, account_id: &str) {
        self.cache.invalidate(&key(account_id)).await;
    }
}

fn key(account_id: &str) -> String {
    format!("balance:{account_id}")
}

/// The cached form: `currency:balance:version`, plain text so that it can be
/// read with redis-cli.
mod codec {
    use crate::domain::{Balance, Currency};

    pub(super) fn encode(balance: &Balance) -> Vec<u8> {
        format!(
            "{}:{}:{}",
            balance.currency, balance.balance_minor, balance.version
        )
        .into_bytes()
    }

    pub(super) fn decode(account_id: &str, bytes: &[u8]) -> Option<Balance> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.split(':');
        let balance = Balance {
            account_id: account_id.to_owned(),
            currency: Currency::parse(parts.next()?)?,
            balance_minor: parts.next()?.parse().ok()?,
            version: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(balance)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn round_trips_and_rejects_garbage() {
            let balance = Balance {
                account_id: "acc_1".into(),
                currency: Currency::parse("EUR").unwrap(),
                balance_minor: -42,
                version: 7,
            };
            assert_eq!(decode("acc_1", &encode(&balance)), Some(balance));
            assert_eq!(decode("acc_1", b"EUR:1"), None);
            assert_eq!(decode("acc_1", b"EUR:1:2:3"), None);
            assert_eq!(decode("acc_1", b"eur:1:2"), None);
        }
    }
}
