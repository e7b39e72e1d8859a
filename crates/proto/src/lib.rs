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

pub mod validate;

// `pub mod google { pub mod api {..} pub mod rpc {..} }` and
// `pub mod meshwork { .. }`, one module per package, written by build.rs.
include!(concat!(env!("OUT_DIR"), "/packages.rs"));
