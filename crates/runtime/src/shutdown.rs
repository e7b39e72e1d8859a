//! One cancellation signal for the whole process.
//!
//! SIGTERM or SIGINT cancels it; servers then report NOT_SERVING, stop
//! accepting, drain in-flight calls, and telemetry is flushed last.

pub use tokio_util::sync::CancellationToken as Shutdown;

/// Cancels `shutdown` on the first SIGTERM or SIGINT; a second one exits at
/// once (status 130), for an operator who does not want to wait for the drain.
pub fn cancel_on_signals(shutdown: Shutdown) {
    tokio::spawn(async move {
        next_signal().await;
        shutdown.cancel();
        next_signal().await;
        eprintln!("second signal: exiting without draining");
        std::process::exit(130);
    });
}

async fn next_signal() {
    {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => tracing::info!("SIGINT received, shutting down"),
            _ = term => tracing::info!("SIGTERM received, shutting down"),
        }
    }
}
