//! The per-client state of the rate limits: one GCRA "theoretical arrival time" per limit
//! per client address, in a map bounded to `RATE_LIMIT_MAX_CLIENTS` entries that forgets
//! the least recently seen address first. It is `governor`'s state store (its [`StateStore`]
//! trait), so the rate arithmetic stays governor's.
//!
//! `governor`'s own keyed stores (a `HashMap` or `DashMap`) only shrink on request and never
//! bound their size, so the bound is here: the `lru` crate's map under one mutex (the work
//! under it is one hash lookup and a few integer operations; one map for both limits, so an
//! address is tracked once).

use std::{
    net::IpAddr,
    sync::{Arc, Mutex, MutexGuard},
};

use crate::sync::LockIgnoringPoison;
use governor::{nanos::Nanos, state::StateStore};
use lru::LruCache;

/// Each limit's state for one client; `None` until that limit first sees it.
type Cells = [Option<Nanos>; 2];

/// Every tracked client, least recently seen first out.
pub(super) struct ClientTable {
    map: Mutex<LruCache<IpAddr, Cells>>,
    capacity: usize,
}

impl ClientTable {
    /// An empty table that holds at most `capacity` clients (at least one). It grows with
    /// the clients seen, not to `capacity` at once.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            map: Mutex::new(LruCache::unbounded()),
            capacity: capacity.max(1),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<IpAddr, Cells>> {
        self.map.lock_ignoring_poison()
    }
}

/// One limit's view of the table: the state store of that limit's `governor` limiter.
pub(super) struct Slot {
    table: Arc<ClientTable>,
    index: usize,
}

impl Slot {
    pub(super) fn new(table: Arc<ClientTable>, index: usize) -> Self {
        Self { table, index }
    }
}

impl StateStore for Slot {
    type Key = IpAddr;

    fn measure_and_replace<T, F, E>(&self, key: &IpAddr, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut map = self.table.lock();
        // Seen: marked most recently seen, refused or not.
        if let Some(cells) = map.get_mut(key) {
            let (outcome, next) = f(cells[self.index])?;
            cells[self.index] = Some(next);
            return Ok(outcome);
        }
        let (outcome, next) = f(None)?;
        if map.len() >= self.table.capacity {
            map.pop_lru();
        }
        let mut cells = [None; 2];
        cells[self.index] = Some(next);
        map.push(*key, cells);
        Ok(outcome)
    }
}
