//! The embedded backend: sessions in this process's memory, with real expiry.
//!
//! Modelled on mini-redis `db.rs`: one map behind a std `Mutex` (never held across an
//! `.await`), an expiry index ordered by deadline, a per-user index, and a background task
//! that purges expired sessions at their deadline so memory does not grow with dead
//! sessions. Sessions are per-process: they vanish on restart and are not shared between
//! instances.
//!
//! Sized for a million sessions with little `data` (about 269 bytes each with `{}` and short
//! user names; a session's data adds its serialized size): deadlines are milliseconds since
//! the store's start (8 bytes, not a 16-byte `Instant`), both indexes are B-trees (no
//! hash-table doubling slack), and a user name is stored once and shared by its sessions.
//!
//! The total is bounded (`MEMORY_STORE_MAX_BYTES`, [`MemoryStore::with_max_bytes`]): each
//! session counts [`SESSION_OVERHEAD_BYTES`] plus the bytes of its user name and of its
//! serialized data, from the moment it is stored until it is removed (ended, evicted, or
//! purged after expiring). A login or a merge that would take the total past the bound is
//! refused with [`StoreError::Full`] and changes nothing; reads, deletions and merges that do
//! not grow the data always work. docs/memory-store.md compares the count with the process's
//! resident memory.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use async_trait::async_trait;
use tokio::{sync::Notify, time::Instant};

use crate::sync::LockIgnoringPoison;

use super::{
    AppData, Created, ListedSession, MemoryUsage, Merged, SessionData, SessionId, SessionStore,
    StoreError,
};

/// Most expired sessions removed under one lock acquisition, so a mass expiry never stalls
/// requests for long.
const PURGE_BATCH: usize = 1024;

/// Default of `MEMORY_STORE_MAX_BYTES`: 256 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// What one session counts besides its user name and data: its entry in the session map
/// (with the map's spare capacity), its entries in the expiry and user indexes (with their
/// B-tree nodes), and the allocator's headers. A million sessions with empty data and short
/// distinct user names take about 269 bytes each (README, "Performance").
pub const SESSION_OVERHEAD_BYTES: u64 = 256;

/// Sessions in this process's memory. Clones share the same sessions; the purge task stops
/// when the last clone is dropped.
#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
    _guard: Arc<DropGuard>,
    max_per_user: usize,
    /// Most bytes the sessions may count (see the module docs).
    max_bytes: u64,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("live_sessions", &self.len())
            .field("bytes", &self.bytes())
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the purge task when an earlier deadline appears or on shutdown.
    wake: Notify,
}

struct State {
    sessions: HashMap<SessionId, Entry>,
    /// (deadline, id), earliest first.
    expirations: BTreeSet<(Millis, SessionId)>,
    /// (user, id): a user's sessions are one range.
    users: BTreeSet<(Arc<str>, SessionId)>,
    /// The origin of [`Millis`].
    epoch: Instant,
    shutdown: bool,
    /// What the held sessions count ([`Entry::cost`]), expired ones not yet purged included.
    bytes: u64,
}

/// Milliseconds since the store's epoch.
type Millis = u64;

struct Entry {
    user: Arc<str>,
    created_at: u64,
    absolute_expires_at: u64,
    expires_at: Millis,
    /// The application's data; `{}` takes no heap.
    data: AppData,
}

/// What a session with this user name and data counts against the bound.
fn cost(user: &str, data: &AppData) -> u64 {
    SESSION_OVERHEAD_BYTES + user.len() as u64 + data.len() as u64
}

impl Entry {
    fn cost(&self) -> u64 {
        cost(&self.user, &self.data)
    }

    fn data(&self) -> SessionData {
        SessionData {
            user: self.user.to_string(),
            status: "active".to_owned(),
            created_at: self.created_at,
            absolute_expires_at: self.absolute_expires_at,
            data: self.data.clone(),
        }
    }
}

struct DropGuard {
    shared: Arc<Shared>,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_one();
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store; spawns its purge task on the current Tokio runtime.
    ///
    /// # Panics
    /// Outside a Tokio runtime (as `tokio::spawn` does).
    pub fn new() -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                sessions: HashMap::new(),
                expirations: BTreeSet::new(),
                users: BTreeSet::new(),
                epoch: Instant::now(),
                shutdown: false,
                bytes: 0,
            }),
            wake: Notify::new(),
        });
        tokio::spawn(purge_task(shared.clone()));
        Self {
            _guard: Arc::new(DropGuard {
                shared: shared.clone(),
            }),
            shared,
            max_per_user: super::DEFAULT_MAX_SESSIONS_PER_USER,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }

    /// Sets the most bytes the sessions may count (default [`DEFAULT_MAX_BYTES`]; see the
    /// module docs for what is counted).
    pub fn with_max_bytes(mut self, max: u64) -> Self {
        self.max_bytes = max;
        self
    }

    /// What the held sessions count, expired ones not yet purged included.
    pub fn bytes(&self) -> u64 {
        self.shared.lock().bytes
    }

    /// Sets how many sessions a user may hold; a login past it ends the oldest.
    pub fn with_max_sessions_per_user(mut self, max: usize) -> Self {
        self.max_per_user = max.max(1);
        self
    }

    /// Sessions held, expired ones not yet purged included.
    pub fn len(&self) -> usize {
        self.shared.lock().sessions.len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock_ignoring_poison()
    }

    /// Removes up to a batch of expired sessions; returns the next deadline, if any, and
    /// whether more expired ones remain.
    fn purge_expired(&self) -> (Option<Instant>, bool) {
        let mut state = self.lock();
        if state.shutdown {
            return (None, false);
        }
        let now = state.now();
        for _ in 0..PURGE_BATCH {
            match state.expirations.first().copied() {
                Some((when, id)) if when <= now => {
                    state.expirations.pop_first();
                    state.remove(&id);
                }
                next => return (next.map(|(when, _)| state.instant(when)), false),
            }
        }
        (None, true)
    }

    fn is_shutdown(&self) -> bool {
        self.lock().shutdown
    }
}

impl State {
    fn now(&self) -> Millis {
        self.epoch.elapsed().as_millis() as Millis
    }

    fn after(&self, ttl: Duration) -> Millis {
        self.now().saturating_add(ttl.as_millis() as Millis)
    }

    fn instant(&self, at: Millis) -> Instant {
        self.epoch + Duration::from_millis(at)
    }

    /// Removes a session from every index; returns it when it was there.
    fn remove(&mut self, id: &SessionId) -> Option<Entry> {
        let entry = self.sessions.remove(id)?;
        self.expirations.remove(&(entry.expires_at, *id));
        self.users.remove(&(entry.user.clone(), *id));
        self.bytes = self.bytes.saturating_sub(entry.cost());
        Some(entry)
    }

    /// The live sessions of `user` that a login must end to stay within `max_per_user` once
    /// it adds one: the oldest (earliest absolute expiry, as the Upstash index orders them)
    /// of those not in `keep` (the session being created, and the one it replaces).
    fn over_limit(
        &self,
        user: &str,
        keep: &[SessionId],
        now: Millis,
        max_per_user: usize,
    ) -> Vec<SessionId> {
        // Only live sessions count against the limit (idle-expired ones not yet purged do
        // not), as on the Upstash store.
        let mut others: Vec<(u64, SessionId)> = self
            .ids_of(user)
            .into_iter()
            .filter(|id| !keep.contains(id))
            .filter_map(|id| {
                let entry = self.sessions.get(&id)?;
                (entry.expires_at > now).then_some((entry.absolute_expires_at, id))
            })
            .collect();
        let excess = (others.len() + 1).saturating_sub(max_per_user);
        others.sort_unstable();
        others.into_iter().take(excess).map(|(_, id)| id).collect()
    }

    /// The refusal of a write that would take the total past `max`: come back when the
    /// earliest session expires (at least a second from now).
    fn full(&self, now: Millis) -> StoreError {
        let wait = self
            .expirations
            .first()
            .map_or(0, |(when, _)| when.saturating_sub(now));
        StoreError::Full {
            retry_after: Duration::from_secs(wait.div_ceil(1000).max(1)),
        }
    }

    /// The ids of `user`'s sessions.
    fn ids_of(&self, user: &str) -> Vec<SessionId> {
        self.users
            .range(user_range(user))
            .map(|(_, id)| *id)
            .collect()
    }

    /// The stored copy of `user`, shared by their sessions, or a new one.
    fn intern(&self, user: &str) -> Arc<str> {
        match self.users.range(user_range(user)).next() {
            Some((key, _)) => key.clone(),
            None => Arc::from(user),
        }
    }

    /// The live entry for `id`; an expired one not yet purged is removed and ignored.
    fn live(&mut self, id: &SessionId, now: Millis) -> Option<&mut Entry> {
        let expired = self.sessions.get(id)?.expires_at <= now;
        if expired {
            self.remove(id);
            return None;
        }
        self.sessions.get_mut(id)
    }

    /// Whether `when` is now the earliest deadline (the purge task must re-arm).
    fn is_first(&self, when: Millis, id: SessionId) -> bool {
        self.expirations.first() == Some(&(when, id))
    }
}

/// The range of `users` holding `user`'s entries (probing with a temporary key).
fn user_range(user: &str) -> std::ops::RangeInclusive<(Arc<str>, SessionId)> {
    let key: Arc<str> = Arc::from(user);
    (key.clone(), SessionId::MIN)..=(key, SessionId::MAX)
}

async fn purge_task(shared: Arc<Shared>) {
    while !shared.is_shutdown() {
        match shared.purge_expired() {
            (_, true) => tokio::task::yield_now().await,
            (Some(when), false) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(when) => {}
                    _ = shared.wake.notified() => {}
                }
            }
            (None, false) => shared.wake.notified().await,
        }
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create(
        &self,
        id: &SessionId,
        data: &SessionData,
        ttl: Duration,
        replaces: Option<&SessionId>,
    ) -> Result<Created, StoreError> {
        let wake = {
            let mut state = self.shared.lock();
            let now = state.now();
            let expires_at = state.after(ttl);
            let added = cost(&data.user, &data.data);
            // Checked before anything changes, counting what the login would end: the session
            // it replaces and the user's oldest past the per-user limit. A refused login leaves
            // every session as it was.
            let mut keep = vec![*id];
            keep.extend(replaces);
            let freed: u64 = replaces
                .into_iter()
                .copied()
                .chain(state.over_limit(&data.user, &keep, now, self.max_per_user))
                .filter_map(|i| state.sessions.get(&i).map(Entry::cost))
                .sum();
            if state.bytes.saturating_sub(freed).saturating_add(added) > self.max_bytes {
                return Err(state.full(now));
            }
            if let Some(old) = replaces {
                state.remove(old);
            }
            if state.live(id, now).is_some() {
                return Ok(Created::IdTaken);
            }
            let user = state.intern(&data.user);
            state.users.insert((user.clone(), *id));
            state.expirations.insert((expires_at, *id));
            state.sessions.insert(
                *id,
                Entry {
                    user,
                    created_at: data.created_at,
                    absolute_expires_at: data.absolute_expires_at,
                    expires_at,
                    data: data.data.clone(),
                },
            );
            state.bytes += added;
            // Never the session just created, which may tie with older ones.
            for old in state.over_limit(&data.user, &[*id], now, self.max_per_user) {
                state.remove(&old);
            }
            state.is_first(expires_at, *id)
        };
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(Created::Created)
    }

    async fn load(
        &self,
        id: &SessionId,
        idle_ttl: Duration,
    ) -> Result<Option<SessionData>, StoreError> {
        let mut state = self.shared.lock();
        let now = state.now();
        let expires_at = state.after(idle_ttl);
        let Some(entry) = state.live(id, now) else {
            return Ok(None);
        };
        let previous = std::mem::replace(&mut entry.expires_at, expires_at);
        let data = entry.data();
        if previous != expires_at {
            state.expirations.remove(&(previous, *id));
            state.expirations.insert((expires_at, *id));
        }
        // No wake-up: a read only moves a deadline later, so the purge task, armed for an
        // earlier or equal deadline, wakes, finds nothing due, and re-arms by itself.
        Ok(Some(data))
    }

    async fn merge(
        &self,
        id: &SessionId,
        patch: &AppData,
        idle_ttl: Duration,
        now_ms: u64,
        max_bytes: usize,
    ) -> Result<Merged, StoreError> {
        let (data, wake) = {
            // All under the one lock: a concurrent merge, delete or purge sees before or after.
            let mut state = self.shared.lock();
            let now = state.now();
            let expires_at = state.after(idle_ttl);
            // `live` changes the total only when it finds the session expired (and then there
            // is nothing to merge).
            let total = state.bytes;
            let Some(entry) = state.live(id, now) else {
                return Ok(Merged::Gone);
            };
            if now_ms >= entry.absolute_expires_at.saturating_mul(1000) {
                state.remove(id);
                return Ok(Merged::Expired);
            }
            let merged = entry
                .data
                .merge(patch)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if merged.len() > max_bytes {
                return Ok(Merged::TooLarge { size: merged.len() });
            }
            // Only growth can pass the bound: a merge that keeps or shrinks the data always
            // works.
            let (old, new) = (entry.data.len() as u64, merged.len() as u64);
            if new > old && total.saturating_add(new - old) > self.max_bytes {
                return Err(state.full(now));
            }
            entry.data = merged;
            let previous = std::mem::replace(&mut entry.expires_at, expires_at);
            let data = entry.data();
            state.bytes = (total + new).saturating_sub(old);
            if previous != expires_at {
                state.expirations.remove(&(previous, *id));
                state.expirations.insert((expires_at, *id));
            }
            // A caller's shorter idle TTL can move the deadline before the one the purge
            // task waits for.
            (data, state.is_first(expires_at, *id))
        };
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(Merged::Merged(data))
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        let mut state = self.shared.lock();
        let now = state.now();
        Ok(state.remove(id).is_some_and(|e| e.expires_at > now))
    }

    async fn list_user(&self, user: &str) -> Result<Vec<ListedSession>, StoreError> {
        let state = self.shared.lock();
        let now = state.now();
        Ok(state
            .ids_of(user)
            .into_iter()
            .filter_map(|id| {
                let entry = state.sessions.get(&id)?;
                (entry.expires_at > now).then_some(ListedSession {
                    id,
                    created_at: entry.created_at,
                    absolute_expires_at: entry.absolute_expires_at,
                })
            })
            .collect())
    }

    async fn delete_user_session(&self, user: &str, id: &SessionId) -> Result<bool, StoreError> {
        let mut state = self.shared.lock();
        let now = state.now();
        let owned = state
            .sessions
            .get(id)
            .is_some_and(|e| &*e.user == user && e.expires_at > now);
        if owned {
            state.remove(id);
        }
        Ok(owned)
    }

    async fn delete_user(&self, user: &str) -> Result<u64, StoreError> {
        let mut state = self.shared.lock();
        let now = state.now();
        let ids = state.ids_of(user);
        let mut ended = 0;
        for id in ids {
            if state.remove(&id).is_some_and(|e| e.expires_at > now) {
                ended += 1;
            }
        }
        Ok(ended)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }

    fn live_sessions(&self) -> Option<u64> {
        Some(self.len() as u64)
    }

    fn memory_usage(&self) -> Option<MemoryUsage> {
        Some(MemoryUsage {
            bytes: self.bytes(),
            max_bytes: self.max_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(user: &str) -> SessionData {
        SessionData {
            user: user.into(),
            status: "active".into(),
            created_at: 1,
            absolute_expires_at: u64::MAX,
            data: AppData::empty(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn expired_sessions_are_purged_in_the_background() {
        let store = MemoryStore::new();
        for _ in 0..100 {
            store
                .create(
                    &SessionId::random(),
                    &data("a"),
                    Duration::from_secs(10),
                    None,
                )
                .await
                .unwrap();
        }
        let keeper = SessionId::random();
        store
            .create(&keeper, &data("b"), Duration::from_secs(60), None)
            .await
            .unwrap();
        assert_eq!(store.len(), 101);
        tokio::time::sleep(Duration::from_secs(11)).await;
        // Let the purge task run.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(store.len(), 1);
        assert!(store.shared.lock().ids_of("a").is_empty());
        assert_eq!(store.shared.lock().users.len(), 1);
        assert_eq!(store.shared.lock().expirations.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_merge_that_shortens_the_expiry_is_purged_at_the_new_deadline() {
        let store = MemoryStore::new();
        let id = SessionId::random();
        store
            .create(&id, &data("a"), Duration::from_secs(600), None)
            .await
            .unwrap();
        // Let the purge task arm itself for the login's deadline.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let patch = AppData::parse(r#"{"k":1}"#).unwrap();
        let merged = store
            .merge(&id, &patch, Duration::from_secs(5), 0, 100)
            .await
            .unwrap();
        assert!(matches!(merged, Merged::Merged(ref s) if s.data == patch));
        tokio::time::sleep(Duration::from_secs(6)).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            store.len(),
            0,
            "purged at the merge's deadline, not the login's"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn load_slides_the_expiry_and_purge_respects_it() {
        let store = MemoryStore::new();
        let id = SessionId::random();
        let ttl = Duration::from_secs(10);
        store.create(&id, &data("a"), ttl, None).await.unwrap();
        tokio::time::sleep(Duration::from_secs(8)).await;
        assert!(store.load(&id, ttl).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_secs(8)).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(store.load(&id, ttl).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_secs(11)).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(store.len(), 0);
        assert!(store.load(&id, ttl).await.unwrap().is_none());
    }

    fn with_data(user: &str, bytes: usize) -> SessionData {
        let text = format!(r#"{{"d":"{}"}}"#, "x".repeat(bytes - 8));
        SessionData {
            data: AppData::parse(&text).unwrap(),
            ..data(user)
        }
    }

    /// What one session of `user` with `bytes` of data counts.
    fn counted(user: &str, bytes: usize) -> u64 {
        SESSION_OVERHEAD_BYTES + user.len() as u64 + bytes as u64
    }

    #[tokio::test(start_paused = true)]
    async fn expired_sessions_stop_counting_when_purged_and_make_room() {
        let one = counted("a", 1000);
        let store = MemoryStore::new().with_max_bytes(3 * one);
        let ttl = Duration::from_secs(10);
        for _ in 0..3 {
            let id = SessionId::random();
            store
                .create(&id, &with_data("a", 1000), ttl, None)
                .await
                .unwrap();
        }
        assert_eq!(store.bytes(), 3 * one);
        let refused = store
            .create(&SessionId::random(), &with_data("b", 1000), ttl, None)
            .await;
        let Err(StoreError::Full { retry_after }) = refused else {
            panic!("a login past the bound must be refused: {refused:?}");
        };
        // Room comes when the earliest session expires.
        assert_eq!(retry_after, Duration::from_secs(10));
        assert_eq!((store.len(), store.bytes()), (3, 3 * one));
        tokio::time::sleep(Duration::from_secs(11)).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!((store.len(), store.bytes()), (0, 0));
        let id = SessionId::random();
        store
            .create(&id, &with_data("b", 1000), ttl, None)
            .await
            .unwrap();
        assert_eq!(store.bytes(), counted("b", 1000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_login_keeps_the_session_it_would_have_replaced() {
        let store = MemoryStore::new().with_max_bytes(counted("a", 1000) + counted("b", 1000));
        let ttl = Duration::from_secs(60);
        let (old, other) = (SessionId::random(), SessionId::random());
        store
            .create(&old, &with_data("a", 100), ttl, None)
            .await
            .unwrap();
        store
            .create(&other, &with_data("b", 1000), ttl, None)
            .await
            .unwrap();
        // Replacing `old` (100 bytes of data) with 2000 bytes does not fit: nothing changes.
        let refused = store
            .create(&SessionId::random(), &with_data("a", 2000), ttl, Some(&old))
            .await;
        assert!(
            matches!(refused, Err(StoreError::Full { .. })),
            "{refused:?}"
        );
        assert!(store.load(&old, ttl).await.unwrap().is_some());
        assert_eq!(store.len(), 2);
        // Replacing it with what fits in the room it frees works.
        let new = SessionId::random();
        let created = store
            .create(&new, &with_data("a", 1000), ttl, Some(&old))
            .await;
        assert_eq!(created.unwrap(), Created::Created);
        assert!(store.load(&old, ttl).await.unwrap().is_none());
        assert_eq!(store.bytes(), counted("a", 1000) + counted("b", 1000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_login_at_the_per_user_limit_counts_the_session_it_ends() {
        let one = counted("a", 1000);
        let store = MemoryStore::new()
            .with_max_sessions_per_user(2)
            .with_max_bytes(2 * one);
        let ttl = Duration::from_secs(60);
        for _ in 0..2 {
            let id = SessionId::random();
            store
                .create(&id, &with_data("a", 1000), ttl, None)
                .await
                .unwrap();
        }
        // Full, but this login ends the user's oldest session, which frees what it needs.
        let id = SessionId::random();
        store
            .create(&id, &with_data("a", 1000), ttl, None)
            .await
            .unwrap();
        assert_eq!((store.len(), store.bytes()), (2, 2 * one));
    }

    #[tokio::test(start_paused = true)]
    async fn merges_count_what_they_add_or_remove_and_only_growth_is_refused() {
        let store = MemoryStore::new().with_max_bytes(counted("a", 1000) + 100);
        let ttl = Duration::from_secs(60);
        let id = SessionId::random();
        store
            .create(&id, &with_data("a", 1000), ttl, None)
            .await
            .unwrap();
        let grow = AppData::parse(&format!(r#"{{"e":"{}"}}"#, "y".repeat(200))).unwrap();
        let refused = store.merge(&id, &grow, ttl, 0, 16_384).await;
        assert!(
            matches!(refused, Err(StoreError::Full { .. })),
            "{refused:?}"
        );
        assert_eq!(store.bytes(), counted("a", 1000));
        let shrink = AppData::parse(r#"{"d":null,"s":1}"#).unwrap();
        let merged = store.merge(&id, &shrink, ttl, 0, 16_384).await.unwrap();
        assert!(matches!(merged, Merged::Merged(ref s) if s.data.as_str() == r#"{"s":1}"#));
        assert_eq!(store.bytes(), counted("a", r#"{"s":1}"#.len()));
        assert!(store.delete_user("a").await.unwrap() == 1);
        assert_eq!(store.bytes(), 0);
    }
}
