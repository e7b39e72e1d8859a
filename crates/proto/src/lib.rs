//! Generated code for every Meshwork contract in `proto/`.
//!
//! Modules mirror the protobuf packages (`meshwork.finance.account.v1` is
//! [`meshwork::finance::account::v1`]). [`FILE_DESCRIPTOR_SET`] holds every
//! file with its imports and custom options, for gRPC reflection, the REST
//! gateway and the client runtime (which reads `idempotency_level`).

#![allow(clippy::all, missing_docs, unreachable_pub)]

/// The encoded `google.protobuf.FileDescriptorSet` of all contracts, custom
/// options (such as `google.api.http`) included.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/meshwork_descriptor.bin"));

pub mod google {
    pub mod api {
        include!(concat!(env!("OUT_DIR"), "/google.api.rs"));
    }
    pub mod rpc {
        include!(concat!(env!("OUT_DIR"), "/google.rpc.rs"));
    }
}

pub mod meshwork {
    pub mod r#type {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/meshwork.r#type.v1.rs"));
        }
    }
    pub mod finance {
        pub mod account {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/meshwork.finance.account.v1.rs"));
            }
        }
        pub mod audit {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/meshwork.finance.audit.v1.rs"));
            }
        }
        pub mod payment {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/meshwork.finance.payment.v1.rs"));
            }
        }
        pub mod risk {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/meshwork.finance.risk.v1.rs"));
            }
        }
        pub mod transaction {
            pub mod v1 {
                include!(concat!(
                    env!("OUT_DIR"),
                    "/meshwork.finance.transaction.v1.rs"
                ));
            }
        }
    }
}
