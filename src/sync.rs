//! Locking a `Mutex` whose holder panicked: every lock here guards state that stays
//! consistent at each step (maps updated together, a token swapped whole), so a panic in one
//! request is no reason to refuse every later one.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// [`Mutex::lock`] that takes the guard of a poisoned lock too.
pub(crate) trait LockIgnoringPoison<T> {
    /// The guard, whether or not a panic poisoned the lock.
    fn lock_ignoring_poison(&self) -> MutexGuard<'_, T>;
}

impl<T> LockIgnoringPoison<T> for Mutex<T> {
    fn lock_ignoring_poison(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
