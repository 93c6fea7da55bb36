//! One store deadline per request: every store call made while handling a request shares the
//! budget `UPSTASH_TIMEOUT_MS`, so a request that needs several calls still answers within it.

use std::{future::Future, time::Duration};

use crate::store::StoreError;

tokio::task_local! {
    /// When the store work of the request being handled must be done.
    static DEADLINE: tokio::time::Instant;
}

/// How long past the request's deadline the store's own deadline may take to report.
const GRACE: Duration = Duration::from_millis(50);

/// A per-request budget for store work; `None` for stores that cannot stall (memory).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    budget: Option<Duration>,
}

impl Deadline {
    pub(crate) fn new(budget: Option<Duration>) -> Self {
        Self { budget }
    }

    /// Runs the handling of one request under one deadline.
    pub(crate) async fn scope<F: Future>(&self, work: F) -> F::Output {
        match self.budget {
            None => work.await,
            Some(budget) => {
                DEADLINE
                    .scope(tokio::time::Instant::now() + budget, work)
                    .await
            }
        }
    }

    /// Runs store work within the request's deadline (or a fresh one outside [`Self::scope`]).
    pub(crate) async fn within<T>(
        &self,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let Some(budget) = self.budget else {
            return work.await;
        };
        let at = DEADLINE
            .try_with(|at| *at)
            .unwrap_or_else(|_| tokio::time::Instant::now() + budget);
        // The store's own deadline (the Upstash client's, same budget, started a moment later)
        // comes first by a hair, so its answer names the cause (a refused connection, a
        // stalled handshake); this one only bounds work that would overrun it.
        match tokio::time::timeout_at(at + GRACE, work).await {
            Ok(result) => result,
            Err(elapsed) => Err(StoreError::Timeout(Box::new(elapsed))),
        }
    }
}
