//! Demo data for `meshwork up`, loaded through the public gRPC API with fixed
//! request ids: a second start finds every request already done, so the data
//! is loaded once and never duplicated.

use meshwork_proto::meshwork::finance::account::v1 as pb;
use meshwork_proto::meshwork::r#type::v1::Money;
use meshwork_runtime::client::{self, ClientPolicy};
use pb::account_service_client::AccountServiceClient;

/// (owner, currency, type, opening deposit in minor units)
const ACCOUNTS: &[(&str, &str, pb::AccountType, i64)] = &[
    ("alice", "EUR", pb::AccountType::Checking, 125_000),
    ("bob", "EUR", pb::AccountType::Savings, 50_000),
    ("wang.fang", "CNY", pb::AccountType::Checking, 880_000),
    ("acme-store", "EUR", pb::AccountType::Merchant, 0),
];

/// Loads the demo data into the services at `url`; returns what to print.
pub async fn demo_data(url: &str, policy: ClientPolicy) -> anyhow::Result<String> {
    let channel = client::channel(url, policy).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut accounts = AccountServiceClient::new(channel);
    let mut lines = vec!["demo data:".to_owned()];
    for (owner, currency, kind, opening) in ACCOUNTS {
        let key = format!("seed-{owner}-{currency}");
        let account = accounts
            .create_account(pb::CreateAccountRequest {
                request_id: format!("{key}-open"),
                owner_id: (*owner).to_owned(),
                currency: (*currency).to_owned(),
                r#type: *kind as i32,
            })
            .await?
            .into_inner()
            .account
            .unwrap_or_default();
        if *opening > 0 {
            accounts
                .deposit(pb::DepositRequest {
                    request_id: format!("{key}-opening-deposit"),
                    account_id: account.account_id.clone(),
                    amount: Some(Money {
                        currency: (*currency).to_owned(),
                        amount_minor: *opening,
                    }),
                    memo: "opening deposit".to_owned(),
                })
                .await?;
        }
        lines.push(format!(
            "  {:<12} {} {}  {}",
            owner, currency, account.masked_account_number, account.account_id
        ));
    }
    Ok(lines.join("\n"))
}
