//! The session lifecycle counters (`sessions_created_total`, `sessions_ended_total` by reason,
//! `sessions_expired_total`), so the session operations count events without knowing
//! Prometheus. A manager without metrics holds [`SessionMetrics::none`].

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

/// Lifecycle counters, registered on a Prometheus registry, or none at all.
#[derive(Debug, Clone, Default)]
pub struct SessionMetrics(Option<Counters>);

#[derive(Debug, Clone)]
struct Counters {
    created: IntCounter,
    ended: IntCounterVec,
    expired: IntCounter,
}

impl SessionMetrics {
    /// Counts nothing: for a manager built without metrics.
    pub fn none() -> Self {
        Self(None)
    }

    /// Creates the counters and registers them on `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let created = IntCounter::new("sessions_created_total", "Sessions created.")?;
        let ended = IntCounterVec::new(
            Opts::new(
                "sessions_ended_total",
                "Sessions ended, by reason (logout, rotated, ended_by_user, logout_all).",
            ),
            &["reason"],
        )?;
        let expired = IntCounter::new(
            "sessions_expired_total",
            "Sessions found past their absolute lifetime and deleted.",
        )?;
        registry.register(Box::new(created.clone()))?;
        registry.register(Box::new(ended.clone()))?;
        registry.register(Box::new(expired.clone()))?;
        Ok(Self(Some(Counters {
            created,
            ended,
            expired,
        })))
    }

    pub(crate) fn created(&self) {
        if let Some(c) = &self.0 {
            c.created.inc();
        }
    }

    /// `n` sessions ended for `reason` (`logout`, `rotated`, `ended_by_user`, `logout_all`).
    pub(crate) fn ended(&self, reason: &'static str, n: u64) {
        if let Some(c) = &self.0 {
            c.ended.with_label_values(&[reason]).inc_by(n);
        }
    }

    pub(crate) fn expired(&self) {
        if let Some(c) = &self.0 {
            c.expired.inc();
        }
    }
}
