//! The clearing account of each channel and currency: where a channel's
//! money enters the ledger before it is settled with the merchant.

use super::*;

impl Store {
    /// The clearing account of `channel` and `currency`, once known.
    pub async fn clearing_account(
        &self,
        channel: Channel,
        currency: &str,
    ) -> Result<Option<String>, PaymentError> {
        let row = sqlx::query(
            "SELECT account_id FROM clearing_accounts WHERE channel = $1 AND currency = $2",
        )
        .bind(channel.as_str())
        .bind(currency)
        .fetch_optional(self.db.pool())
        .await?;
        Ok(row.map(|r| r.try_get("account_id")).transpose()?)
    }

    /// Remembers the clearing account of `channel` and `currency`.
    pub async fn save_clearing_account(
        &self,
        channel: Channel,
        currency: &str,
        account_id: &str,
    ) -> Result<(), PaymentError> {
        sqlx::query(
            "INSERT INTO clearing_accounts (channel, currency, account_id) VALUES ($1, $2, $3) \
             ON CONFLICT (channel, currency) DO NOTHING",
        )
        .bind(channel.as_str())
        .bind(currency)
        .bind(account_id)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }
}
