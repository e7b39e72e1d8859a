//! A server task a test owns: shut down gracefully on request, aborted when
//! dropped, so a failing test never leaves a server behind.

use meshwork_runtime::shutdown::Shutdown;
use tokio::task::JoinHandle;

pub(crate) struct Serving {
    shutdown: Shutdown,
    task: Option<JoinHandle<()>>,
}

impl Serving {
    pub(crate) fn new(shutdown: Shutdown, task: JoinHandle<()>) -> Self {
        Self {
            shutdown,
            task: Some(task),
        }
    }

    /// Starts graceful shutdown (health goes NOT_SERVING at once).
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Shuts down and waits until the task has ended.
    pub(crate) async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
