//! The repository's shape, checked: every service crate is registered in
//! the target list, no service crate depends on another one, and domain
//! modules stay free of transport and storage types. These are the
//! invariants ARCHITECTURE.md states; a change that breaks one fails here.

use std::path::{Path, PathBuf};

use crate::targets::SERVICES;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `(domain, name, folder)` of every crate under `services/<domain>/<name>`.
fn service_crates() -> Vec<(String, String, PathBuf)> {
    let mut crates = Vec::new();
    for domain in std::fs::read_dir(repo().join("services")).expect("services/") {
        let domain = domain.unwrap().path();
        if !domain.is_dir() {
            continue;
        }
        for service in std::fs::read_dir(&domain).unwrap() {
            let folder = service.unwrap().path();
            if folder.join("Cargo.toml").exists() {
                let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
                crates.push((name(&domain), name(&folder), folder));
            }
        }
    }
    crates.sort();
    assert!(!crates.is_empty(), "no service crate found");
    crates
}

/// The names in a manifest's `[dependencies]` table (not dev- or build-).
fn dependencies(manifest: &str) -> Vec<String> {
    let mut inside = false;
    let mut names = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == "[dependencies]";
            continue;
        }
        if inside && let Some((name, _)) = line.split_once('=') {
            names.push(name.trim().to_owned());
        }
    }
    names
}

#[test]
fn every_service_crate_is_registered_under_its_one_name() {
    for (domain, name, folder) in service_crates() {
        let manifest = std::fs::read_to_string(folder.join("Cargo.toml")).unwrap();
        let package = format!("{domain}-{name}");
        assert!(
            manifest.contains(&format!("name = \"{package}\"")),
            "{} must be the crate {package}",
            folder.display()
        );
        let target = format!("{domain}.{name}");
        assert!(
            SERVICES.iter().any(|s| s.target == target),
            "{target} ({}) is not in crates/meshwork/src/targets.rs SERVICES",
            folder.display()
        );
    }
}

#[test]
fn no_service_crate_depends_on_another() {
    let crates = service_crates();
    let packages: Vec<String> = crates.iter().map(|(d, n, _)| format!("{d}-{n}")).collect();
    for (domain, name, folder) in &crates {
        let manifest = std::fs::read_to_string(folder.join("Cargo.toml")).unwrap();
        let own = format!("{domain}-{name}");
        for dependency in dependencies(&manifest) {
            assert!(
                dependency == own || !packages.contains(&dependency),
                "{own} depends on {dependency}: services talk over gRPC and events, never \
                 through each other's crates (a test may, under [dev-dependencies])"
            );
        }
    }
}

#[test]
fn domain_modules_import_no_transport_or_storage() {
    let banned = ["tonic", "prost", "prost_types", "sqlx", "meshwork_proto"];
    for (_, _, folder) in service_crates() {
        let domain = folder.join("src/domain.rs");
        let Ok(text) = std::fs::read_to_string(&domain) else {
            continue;
        };
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for crate_name in banned {
                let used = code.contains(&format!("{crate_name}::"))
                    || code.trim_start().starts_with(&format!("use {crate_name}"));
                assert!(
                    !used,
                    "{}:{}: domain code uses {crate_name} (keep it pure: conversion in api.rs, SQL in store.rs)",
                    domain.display(),
                    number + 1
                );
            }
        }
    }
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Protobuf types stay at the edges of a service: its gRPC face
/// (`api.rs`), its registration (`lib.rs`), the typed event payloads it
/// subscribes to (`subscriptions.rs`), and typed clients of other services
/// (a module that wraps a generated `...ServiceClient` and answers in this
/// service's own types). The workflow, engine, store and domain never see
/// them.
#[test]
fn protobuf_types_stay_in_api_and_typed_clients() {
    for (_, _, folder) in service_crates() {
        for file in rust_files(&folder.join("src")) {
            let text = std::fs::read_to_string(&file).unwrap();
            if !text.contains("meshwork_proto") {
                continue;
            }
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            let inner = file.components().any(|c| c.as_os_str() == "store")
                || matches!(
                    name.as_str(),
                    "domain.rs" | "store.rs" | "workflow.rs" | "engine.rs"
                );
            let edge = matches!(name.as_str(), "api.rs" | "lib.rs" | "subscriptions.rs");
            let client = text.contains("ServiceClient<");
            assert!(
                !inner && (edge || client),
                "{}: uses protobuf types; convert in api.rs or in a typed client of its own",
                file.display()
            );
        }
    }
}

#[test]
fn the_contracts_readme_lists_every_package() {
    let root = repo().join("proto");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut stack = vec![root.join("meshwork")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "proto") {
                let text = std::fs::read_to_string(&path).unwrap();
                let package = text
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("package "))
                    .and_then(|p| p.strip_suffix(';'))
                    .unwrap_or_else(|| panic!("{} has no package", path.display()));
                assert!(
                    readme.contains(&format!("| `{package}` |")),
                    "proto/README.md has no row for {package}"
                );
            }
        }
    }
}

#[test]
fn the_dependency_reader_sees_only_normal_dependencies() {
    let manifest = "[package]\nname = \"x\"\n[dependencies]\na = 1\nb = { workspace = true }\n\
                    [dev-dependencies]\nc = 1\n";
    assert_eq!(dependencies(manifest), ["a", "b"]);
}
