//! The list of targets: one line per service. Groups (`finance`, `commerce`,
//! `manufacturing`, `all`) come from the target names.
//!
//! Adding a service: its contract, its crate, and one line in [`SERVICES`]
//! (CONTRIBUTING.md has the three steps).

use std::collections::BTreeSet;

use anyhow::bail;
use meshwork_runtime::service::Service;

/// The HTTP edge.
pub const GATEWAY: &str = "gateway";

/// Every target but the edge, in start order (any order works: channels
/// connect lazily).
pub static SERVICES: &[&Service] = &[
    &commerce_cart::SERVICE,
    &commerce_inventory::SERVICE,
    &commerce_product::SERVICE,
    &finance_account::SERVICE,
    &finance_audit::SERVICE,
    &finance_payment::SERVICE,
    &finance_payment::SANDBOX,
    &finance_risk::SERVICE,
    &finance_transaction::SERVICE,
];

/// The descriptor of `target`, if it is a service.
pub fn service(target: &str) -> Option<&'static Service> {
    SERVICES.iter().copied().find(|s| s.target == target)
}

/// Names that stand for several targets, with their members: `all`, each
/// domain (the targets named `<domain>.*`), then every target for itself.
pub fn groups() -> Vec<(String, Vec<&'static str>)> {
    let mut all: Vec<&'static str> = SERVICES.iter().map(|s| s.target).collect();
    all.push(GATEWAY);
    let mut groups = vec![("all".to_owned(), all.clone())];
    let domains: BTreeSet<&str> = SERVICES.iter().filter_map(|s| s.domain()).collect();
    for domain in domains {
        let members = SERVICES
            .iter()
            .filter(|s| s.domain() == Some(domain))
            .map(|s| s.target)
            .collect();
        groups.push((domain.to_owned(), members));
    }
    groups.extend(all.into_iter().map(|t| (t.to_owned(), vec![t])));
    groups
}

/// Expands groups and checks names; the result is sorted and free of repeats.
pub fn expand(names: &[String]) -> anyhow::Result<BTreeSet<&'static str>> {
    let groups = groups();
    let mut targets = BTreeSet::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        match groups.iter().find(|(group, _)| group == name) {
            Some((_, members)) => targets.extend(members.iter().copied()),
            None => bail!("unknown target {name:?}; `meshwork targets` lists them"),
        }
    }
    if targets.is_empty() {
        bail!("no target given");
    }
    Ok(targets)
}

/// The target that serves a proto service:
/// `meshwork.finance.account.v1.AccountService` → `finance.account`.
pub fn target_of_service(full_name: &str) -> Option<String> {
    let (package, _service) = full_name.rsplit_once('.')?;
    let (path, _version) = package.rsplit_once('.')?;
    path.strip_prefix("meshwork.").map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_groups_and_refuses_unknown_names() {
        let all = expand(&["all".to_owned()]).unwrap();
        assert!(all.contains(GATEWAY) && all.contains("finance.account"));
        assert!(all.contains("payment-sandbox"));
        let one = expand(&["finance.account".to_owned(), "finance.account".to_owned()]).unwrap();
        assert_eq!(one.into_iter().collect::<Vec<_>>(), ["finance.account"]);
        let finance = expand(&["finance".to_owned(), "finance.risk".to_owned()]).unwrap();
        assert_eq!(
            finance.into_iter().collect::<Vec<_>>(),
            [
                "finance.account",
                "finance.audit",
                "finance.payment",
                "finance.risk",
                "finance.transaction"
            ]
        );
        assert!(expand(&["finance.acount".to_owned()]).is_err());
        assert!(expand(&[]).is_err());
    }

    #[test]
    fn services_map_to_their_targets() {
        assert_eq!(
            target_of_service("meshwork.finance.account.v1.AccountService").as_deref(),
            Some("finance.account")
        );
        assert_eq!(target_of_service("grpc.health.v1.Health"), None);
        for service in SERVICES {
            for name in service.grpc_services {
                assert_eq!(
                    target_of_service(name).as_deref(),
                    Some(service.target),
                    "{name} is served by {} but its package names another target",
                    service.target
                );
            }
        }
    }

    #[test]
    fn targets_are_unique_and_calls_name_listed_targets() {
        let mut seen = BTreeSet::new();
        for service in SERVICES {
            assert!(
                seen.insert(service.target),
                "{} listed twice",
                service.target
            );
        }
        for service in SERVICES {
            for called in service.calls {
                assert!(
                    seen.contains(called),
                    "{} calls {called}, which is not a target",
                    service.target
                );
            }
        }
    }
}
