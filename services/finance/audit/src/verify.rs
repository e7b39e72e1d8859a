//! VerifyChain's walk: the stored chain read page by page from its first
//! record up to the head it had when the walk began, each record checked
//! against its predecessor (see [`ChainCheck`]).

use crate::domain::{Break, ChainCheck};
use crate::error::AuditError;
use crate::store::{Filter, PAGE, Store};

/// Checks the chain up to its current head: how many records were checked
/// and the first break found, if any.
pub async fn verify_chain(store: &Store) -> Result<(i64, Option<Break>), AuditError> {
    // The head first: records appended during the walk are not judged.
    let (head_sequence, head_hash) = store.head().await?;
    let mut check = ChainCheck::default();
    let mut after = 0;
    let everything = Filter::default();
    'walk: loop {
        let records = store.query(&everything, after, PAGE).await?;
        for record in &records {
            if record.sequence > head_sequence {
                break 'walk;
            }
            check.check(record);
            if check.is_broken() {
                break 'walk;
            }
            after = record.sequence;
        }
        if records.len() < PAGE {
            break;
        }
    }
    let (checked, broken) = check.finish(head_sequence, &head_hash);
    if let Some(broken) = &broken {
        tracing::warn!(sequence = broken.sequence(), problem = %broken.describe(), "audit chain broken");
    }
    Ok((checked, broken))
}
