//! The one way every long-running part stops. A [`Shutdown`] is triggered once (by SIGTERM or
//! SIGINT, by a test, or by the part of `run` that finished first) and every task waiting on
//! it sees it, including a task that only starts waiting afterwards: a watch channel, not a
//! one-shot notification that a late waiter would miss.

use std::future::Future;

use tokio::sync::watch;

/// Cheap to clone; every clone triggers and sees the same shutdown.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Sender<bool>);

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Shutdown(watch::Sender::new(false))
    }

    /// Triggered by SIGTERM (docker stop, Kubernetes) or SIGINT (Ctrl-C). The handlers are
    /// installed before this returns, so a signal that arrives at once is not lost; must be
    /// called inside a tokio runtime.
    pub fn signal() -> Self {
        let shutdown = Shutdown::new();
        let trigger = shutdown.clone();
        let signalled = signalled();
        tokio::spawn(async move {
            signalled.await;
            trigger.trigger();
        });
        shutdown
    }

    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once triggered, at once if it already was. Owns what it needs, so it can be
    /// handed to a spawned server.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut triggered = self.0.subscribe();
        async move {
            if triggered.wait_for(|t| *t).await.is_err() {
                // Every handle is gone, so nothing can trigger it any more: never resolves,
                // rather than stopping a server nobody asked to stop.
                std::future::pending::<()>().await;
            }
        }
    }

    /// The flag itself, for a loop that checks it between batches (the Kafka consumer).
    pub fn receiver(&self) -> watch::Receiver<bool> {
        self.0.subscribe()
    }
}

/// A future that resolves on SIGTERM or SIGINT, with both handlers installed already.
#[cfg(unix)]
fn signalled() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            (Ok(mut one), Err(e)) | (Err(e), Ok(mut one)) => {
                tracing::warn!(error = %e, "cannot listen for one of SIGTERM and SIGINT");
                one.recv().await;
            }
            (Err(e), Err(_)) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM or SIGINT");
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(not(unix))]
fn signalled() -> impl Future<Output = ()> + Send + 'static {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_trigger_reaches_every_clone_and_later_waiters() {
        let shutdown = Shutdown::new();
        let early = tokio::spawn(shutdown.clone().wait());
        assert!(!*shutdown.receiver().borrow());
        shutdown.clone().trigger();
        tokio::time::timeout(Duration::from_secs(5), early)
            .await
            .expect("an early waiter wakes")
            .unwrap();
        assert!(*shutdown.receiver().borrow());
        tokio::time::timeout(Duration::from_secs(5), shutdown.wait())
            .await
            .expect("a late waiter resolves at once");
    }

    #[tokio::test]
    async fn a_shutdown_nobody_can_trigger_never_resolves() {
        let orphan = Shutdown::new().wait();
        let waited = tokio::time::timeout(Duration::from_millis(50), orphan).await;
        assert!(waited.is_err());
    }
}
