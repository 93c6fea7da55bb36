//! The instance's budget of Upstash commands per second (`UPSTASH_MAX_COMMANDS_PER_SECOND`).
//! Upstash bills every command, each one inside a pipeline or transaction too, and a plan
//! has a cap of commands per second past which every caller fails: the client takes a call's
//! commands from this budget before sending it, and a call that does not fit is refused
//! without sending anything.
//!
//! The budget is a `governor` GCRA allowance of N commands usable at once and refilled
//! continuously (N per second), checked with one atomic compare-and-swap, so it holds
//! exactly under any concurrency.

use std::{num::NonZeroU32, time::Duration};

use governor::{
    clock::{Clock, DefaultClock},
    middleware::NoOpMiddleware,
    state::{InMemoryState, NotKeyed},
    Quota, RateLimiter,
};

/// Commands per second for the whole client.
pub(super) struct CommandBudget<C: Clock = DefaultClock> {
    limiter: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
    clock: C,
    per_second: NonZeroU32,
}

impl CommandBudget {
    /// `per_second` commands a second, on the real clock.
    pub(super) fn new(per_second: NonZeroU32) -> Self {
        Self::with_clock(per_second, DefaultClock::default())
    }
}

impl<C: Clock + Clone> CommandBudget<C> {
    pub(super) fn with_clock(per_second: NonZeroU32, clock: C) -> Self {
        Self {
            limiter: RateLimiter::direct_with_clock(Quota::per_second(per_second), clock.clone()),
            clock,
            per_second,
        }
    }

    /// Takes `commands` from the budget, or says how long until they would fit (and takes
    /// nothing). A call of more commands than a whole second's budget (a listing of a user
    /// with more sessions than that) waits for the full budget and takes all of it, rather
    /// than never passing.
    pub(super) fn take(&self, commands: usize) -> Result<(), Duration> {
        let Some(n) = NonZeroU32::new(u32::try_from(commands).unwrap_or(u32::MAX)) else {
            return Ok(());
        };
        match self.limiter.check_n(n.min(self.per_second)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(self.clock.now())),
            // Cannot happen: `n` is at most the burst.
            Err(_) => Err(Duration::from_secs(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use governor::clock::FakeRelativeClock;

    use super::*;

    fn budget(per_second: u32) -> (CommandBudget<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let per_second = NonZeroU32::new(per_second).unwrap();
        (CommandBudget::with_clock(per_second, clock.clone()), clock)
    }

    #[test]
    fn a_call_that_does_not_fit_takes_nothing_and_the_budget_refills() {
        let (budget, clock) = budget(10);
        assert_eq!(budget.take(7), Ok(()));
        // 4 more do not fit: refused, and nothing is taken, so 3 still do.
        let wait = budget.take(4).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert_eq!(budget.take(3), Ok(()));
        assert!(budget.take(1).is_err());
        // One command comes back every 100 ms.
        clock.advance(Duration::from_millis(100));
        assert_eq!(budget.take(1), Ok(()));
        assert!(budget.take(1).is_err());
        clock.advance(Duration::from_secs(1));
        assert_eq!(budget.take(10), Ok(()));
    }

    #[test]
    fn a_call_larger_than_the_budget_waits_for_all_of_it() {
        let (budget, clock) = budget(5);
        assert_eq!(budget.take(1), Ok(()));
        assert!(budget.take(50).is_err());
        clock.advance(Duration::from_millis(200));
        assert_eq!(budget.take(50), Ok(()));
        assert!(budget.take(1).is_err());
        assert_eq!(budget.take(0), Ok(()));
    }

    #[test]
    fn the_budget_holds_under_concurrency() {
        let (budget, _) = budget(1000);
        let budget = Arc::new(budget);
        let taken: usize = (0..8)
            .map(|_| {
                let budget = budget.clone();
                std::thread::spawn(move || (0..500).filter(|_| budget.take(1).is_ok()).count())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        // The clock stands still: exactly the burst, however the threads interleave.
        assert_eq!(taken, 1000);
    }
}
