//! `meshwork`: the one binary.
//!
//! `up` runs every service and the gateway in one process on embedded
//! defaults with demo data; `serve --target ...` runs the named targets (what
//! a Kubernetes Deployment runs); `migrate` applies migrations; `version`.

mod cli;
#[cfg(test)]
mod layout;
mod run;
mod seed;
mod targets;

/// mimalloc instead of the system allocator: under load, glibc's malloc
/// arenas were a fifth of the CPU profile (allocation plus lock contention
/// between worker threads); see BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let (cli, flags) = cli::parse();
    // One TLS provider for sqlx, redis and tonic, chosen before any of them starts.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("meshwork: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli.run(flags)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("meshwork: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
