//! What the embedded contracts say about methods, read once from the
//! descriptor set: which gRPC paths exist (metrics label anything else
//! `unknown`, so made-up paths cannot grow the series without bound) and which
//! are safe to retry (`option idempotency_level`).

use std::collections::HashSet;
use std::sync::OnceLock;

use prost::Message;
use prost_types::method_options::IdempotencyLevel;

/// Methods served by every process besides the contracts' own.
const PLATFORM_METHODS: &[&str] = &[
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

struct Methods {
    all: HashSet<String>,
    idempotent: HashSet<String>,
}

fn methods() -> &'static Methods {
    static METHODS: OnceLock<Methods> = OnceLock::new();
    METHODS.get_or_init(|| {
        let mut methods = Methods {
            all: PLATFORM_METHODS.iter().map(|m| (*m).to_owned()).collect(),
            idempotent: HashSet::new(),
        };
        let Ok(set) = prost_types::FileDescriptorSet::decode(meshwork_proto::FILE_DESCRIPTOR_SET)
        else {
            return methods;
        };
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                    let level = method
                        .options
                        .as_ref()
                        .map(|o| o.idempotency_level())
                        .unwrap_or_default();
                    if matches!(
                        level,
                        IdempotencyLevel::Idempotent | IdempotencyLevel::NoSideEffects
                    ) {
                        methods.idempotent.insert(path.clone());
                    }
                    methods.all.insert(path);
                }
            }
        }
        methods
    })
}

/// Whether `path` ("/pkg.Service/Method") is a method some contract defines.
pub fn is_known(path: &str) -> bool {
    methods().all.contains(path)
}

/// Whether the contract marks `path` as safe to retry: `idempotency_level`
/// IDEMPOTENT or NO_SIDE_EFFECTS.
pub fn is_idempotent(path: &str) -> bool {
    methods().idempotent.contains(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_methods_and_idempotency_from_the_contracts() {
        assert!(is_known(
            "/meshwork.finance.account.v1.AccountService/Deposit"
        ));
        assert!(is_known("/grpc.health.v1.Health/Check"));
        assert!(!is_known(
            "/meshwork.finance.account.v1.AccountService/Nope"
        ));
        assert!(is_idempotent(
            "/meshwork.finance.account.v1.AccountService/GetAccount"
        ));
        assert!(is_idempotent(
            "/meshwork.finance.account.v1.AccountService/Deposit"
        ));
        assert!(!is_idempotent("/grpc.health.v1.Health/Watch"));
    }
}
