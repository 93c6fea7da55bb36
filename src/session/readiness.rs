//! The readiness answer, cached: `/readyz` may be probed every millisecond by a load
//! balancer, and on Upstash each check is a billed `PING`. One check at a time runs, and its
//! outcome (success or failure) answers every probe for [`MAX_AGE`]: about one `PING` a
//! second however often the service is probed.

use std::time::Duration;

use tokio::{sync::Mutex, time::Instant};

use super::{FailureKind, SessionError};
use crate::store::StoreError;
use crate::telemetry::ErrorChain;

/// How long one check answers the probes.
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// The latest check.
#[derive(Default)]
pub(super) struct Readiness {
    last: Mutex<Option<Check>>,
}

struct Check {
    at: Instant,
    /// What failed, and the failure's text for the log.
    failure: Option<(FailureKind, String)>,
}

impl Check {
    fn outcome(&self) -> Result<(), SessionError> {
        let Some((kind, cause)) = &self.failure else {
            return Ok(());
        };
        let cause = format!("{cause} (checked {:?} ago)", self.at.elapsed()).into();
        Err(SessionError::Store(match kind {
            FailureKind::TimedOut => StoreError::Timeout(cause),
            FailureKind::OverBudget => StoreError::OverBudget(cause),
            _ => StoreError::Unavailable(cause),
        }))
    }
}

impl Readiness {
    /// The outcome of a check at most [`MAX_AGE`] old, running `check` when there is none.
    /// Concurrent callers wait for the one check in flight rather than start their own.
    pub(super) async fn get(
        &self,
        check: impl std::future::Future<Output = Result<(), SessionError>>,
    ) -> Result<(), SessionError> {
        let mut last = self.last.lock().await;
        if let Some(fresh) = last.as_ref().filter(|c| c.at.elapsed() < MAX_AGE) {
            return fresh.outcome();
        }
        let outcome = check.await;
        *last = Some(Check {
            at: Instant::now(),
            failure: outcome.as_ref().err().map(|e| (e.kind(), causes(e))),
        });
        outcome
    }
}

/// The causes below `error`, for the log line of a cached failure.
fn causes(error: &SessionError) -> String {
    std::error::Error::source(error)
        .map(|cause| ErrorChain(cause).to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn down() -> SessionError {
        SessionError::Store(StoreError::Unavailable("connection refused".into()))
    }

    #[tokio::test(start_paused = true)]
    async fn one_check_answers_every_probe_for_a_second_its_failure_too() {
        let readiness = Readiness::default();
        let checks = AtomicUsize::new(0);
        let ok = || async {
            checks.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(())
        };
        // Concurrent probes wait for the one check in flight.
        let answers = futures_util::future::join_all((0..20).map(|_| readiness.get(ok()))).await;
        assert!(answers.iter().all(Result::is_ok));
        for _ in 0..100 {
            assert!(readiness.get(ok()).await.is_ok());
        }
        assert_eq!(checks.load(Ordering::SeqCst), 1);

        tokio::time::advance(MAX_AGE).await;
        let failing = || async {
            checks.fetch_add(1, Ordering::SeqCst);
            Err(down())
        };
        let error = readiness.get(failing()).await.unwrap_err();
        assert_eq!(error.kind(), FailureKind::Unavailable);
        // Cached: the next probes fail alike without checking, whatever check they bring.
        for _ in 0..10 {
            let error = readiness.get(ok()).await.unwrap_err();
            assert_eq!(error.kind(), FailureKind::Unavailable);
            assert!(
                causes(&error).contains("connection refused"),
                "{}",
                causes(&error)
            );
        }
        assert_eq!(checks.load(Ordering::SeqCst), 2);

        tokio::time::advance(MAX_AGE).await;
        assert!(readiness.get(ok()).await.is_ok());
        assert_eq!(checks.load(Ordering::SeqCst), 3);
    }
}
