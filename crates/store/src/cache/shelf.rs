//! A bounded map of answers read from the database, each trusted for a fixed time.
//!
//! Reads take a shared lock and never wait on each other; writes (fills, invalidations) take
//! it exclusively for a short moment. No `.await` ever runs under the lock.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use pushgate_core::UnixMillis;

/// A second way into the entries (e.g. by device), kept in step with them: told of every
/// entry that comes and goes.
pub(crate) trait Index<K, V>: Default {
    /// `value` is now kept under `key`. Returns the key of an entry the index no longer
    /// reaches (it pointed there before), which then leaves too.
    fn remember(&mut self, key: &K, value: &V) -> Option<K>;

    /// `value`, kept under `key`, is gone.
    fn forget(&mut self, key: &K, value: &V);
}

impl<K, V> Index<K, V> for () {
    fn remember(&mut self, _key: &K, _value: &V) -> Option<K> {
        None
    }

    fn forget(&mut self, _key: &K, _value: &V) {}
}

/// An answer and when it was read.
#[derive(Debug)]
struct Stamped<V> {
    value: V,
    read_at: UnixMillis,
}

/// A snapshot of the shelf's write count, taken before a database read: a fill carrying an
/// older snapshot than the shelf's is dropped, because a write in between may have changed the
/// row after the read saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Generation(u64);

/// The map, its index and its bound.
#[derive(Debug)]
pub(crate) struct Shelf<K, V, I = ()> {
    inner: RwLock<Contents<K, V, I>>,
    max_entries: usize,
    ttl_ms: i64,
}

/// What the lock guards.
#[derive(Debug)]
pub(crate) struct Contents<K, V, I> {
    entries: HashMap<K, Stamped<V>>,
    /// The second way in; [`Contents::remove`] keeps it in step.
    pub(crate) index: I,
    generation: u64,
}

impl<K: Hash + Eq, V, I: Index<K, V>> Contents<K, V, I> {
    /// Keeps `value` under `key`, read at `read_at`, replacing what was there.
    pub(crate) fn insert(&mut self, key: K, value: V, read_at: UnixMillis) {
        if let Some((key, old)) = self.entries.remove_entry(&key) {
            self.index.forget(&key, &old.value);
        }
        let displaced = self
            .index
            .remember(&key, &value)
            .filter(|displaced| *displaced != key);
        self.entries.insert(key, Stamped { value, read_at });
        if let Some(displaced) = displaced {
            self.remove(&displaced);
        }
    }

    /// Drops the entry under `key`, telling the index.
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (key, stamped) = self.entries.remove_entry(key)?;
        self.index.forget(&key, &stamped.value);
        Some(stamped.value)
    }

    /// Drops every entry.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.index = I::default();
    }

    fn remove_all(&mut self, keys: Vec<K>) {
        for key in keys {
            self.remove(&key);
        }
    }
}

impl<K: Hash + Eq + Clone, V, I: Index<K, V>> Shelf<K, V, I> {
    /// An empty shelf of at most `max_entries` answers (at least one), each trusted for
    /// `ttl_ms`.
    pub(crate) fn new(max_entries: usize, ttl_ms: i64) -> Self {
        Self {
            inner: RwLock::new(Contents {
                entries: HashMap::new(),
                index: I::default(),
                generation: 0,
            }),
            max_entries: max_entries.max(1),
            ttl_ms,
        }
    }

    /// Whether an answer read at `read_at` may still be given at `now`. A clock that went
    /// back counts as stale: better one more read than an answer of unknown age.
    fn is_fresh(&self, read_at: UnixMillis, now: UnixMillis) -> bool {
        now >= read_at && now.saturating_sub(read_at) < self.ttl_ms
    }

    /// Looks `key` up and lets `answer` judge a fresh entry (stale ones are not shown).
    pub(crate) fn get<Q, T>(
        &self,
        key: &Q,
        now: UnixMillis,
        answer: impl FnOnce(&V) -> Option<T>,
    ) -> Option<T>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let contents = self.read();
        let stamped = contents.entries.get(key)?;
        if self.is_fresh(stamped.read_at, now) {
            answer(&stamped.value)
        } else {
            None
        }
    }

    /// The write count now; take it before reading the database for a fill.
    pub(crate) fn generation(&self) -> Generation {
        Generation(self.read().generation)
    }

    /// Runs `change` with the contents locked for writing, counting it as a write: fills that
    /// started before it are dropped.
    pub(crate) fn invalidate<T>(&self, change: impl FnOnce(&mut Contents<K, V, I>) -> T) -> T {
        let mut contents = self.write();
        contents.generation = contents.generation.wrapping_add(1);
        change(&mut contents)
    }

    /// Counts a write and keeps what `value` makes of the current entry under `key` (fresh or
    /// not), read at `now`. Makes room first.
    pub(crate) fn put(&self, key: K, now: UnixMillis, value: impl FnOnce(Option<&V>) -> V) {
        let mut contents = self.write();
        contents.generation = contents.generation.wrapping_add(1);
        let value = value(contents.entries.get(&key).map(|stamped| &stamped.value));
        if !contents.entries.contains_key(&key) {
            self.make_room(&mut contents, now);
        }
        contents.insert(key, value, now);
    }

    /// Keeps `value` under `key`, read at `now`, unless a write happened since `before` (the
    /// answer may then already be wrong). Makes room first.
    pub(crate) fn fill(&self, before: Generation, key: K, value: V, now: UnixMillis) {
        let mut contents = self.write();
        if contents.generation != before.0 {
            return;
        }
        if !contents.entries.contains_key(&key) {
            self.make_room(&mut contents, now);
        }
        contents.insert(key, value, now);
    }

    /// Drops every stale entry and every one `keep` refuses.
    pub(crate) fn sweep(&self, now: UnixMillis, mut keep: impl FnMut(&V) -> bool) {
        let mut contents = self.write();
        let gone: Vec<K> = contents
            .entries
            .iter()
            .filter(|(_, stamped)| !self.is_fresh(stamped.read_at, now) || !keep(&stamped.value))
            .map(|(key, _)| key.clone())
            .collect();
        contents.remove_all(gone);
    }

    /// How many entries are kept (stale ones included until swept or evicted).
    pub(crate) fn len(&self) -> usize {
        self.read().entries.len()
    }

    /// Below the bound, nothing. At it, stale entries go first; if that is not enough, the
    /// oldest eighth goes, so the O(n) pass runs at most once per n/8 fills.
    fn make_room(&self, contents: &mut Contents<K, V, I>, now: UnixMillis) {
        if contents.entries.len() < self.max_entries {
            return;
        }
        let stale: Vec<K> = contents
            .entries
            .iter()
            .filter(|(_, stamped)| !self.is_fresh(stamped.read_at, now))
            .map(|(key, _)| key.clone())
            .collect();
        contents.remove_all(stale);
        let len = contents.entries.len();
        if len < self.max_entries {
            return;
        }
        // Down to seven eighths of the bound, minus the one about to come in.
        let keep = (self.max_entries - self.max_entries / 8).saturating_sub(1);
        let excess = len - keep;
        let mut by_age: Vec<(UnixMillis, &K)> = contents
            .entries
            .iter()
            .map(|(key, stamped)| (stamped.read_at, key))
            .collect();
        by_age.select_nth_unstable_by_key(excess - 1, |(read_at, _)| *read_at);
        let oldest: Vec<K> = by_age[..excess]
            .iter()
            .map(|(_, key)| (*key).clone())
            .collect();
        contents.remove_all(oldest);
    }

    fn read(&self) -> RwLockReadGuard<'_, Contents<K, V, I>> {
        // Every change under the lock leaves the map whole; a panic elsewhere cannot break it.
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Contents<K, V, I>> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: i64 = 100;

    fn shelf(max_entries: usize) -> Shelf<u32, &'static str> {
        Shelf::new(max_entries, TTL)
    }

    fn fill(shelf: &Shelf<u32, &'static str>, key: u32, now: UnixMillis) {
        shelf.fill(shelf.generation(), key, "answer", now);
    }

    fn has(shelf: &Shelf<u32, &'static str>, key: u32, now: UnixMillis) -> bool {
        shelf.get(&key, now, |value| Some(*value)).is_some()
    }

    #[test]
    fn an_answer_is_given_for_the_ttl_and_not_after_nor_before_it_was_read() {
        let shelf = shelf(4);
        fill(&shelf, 1, 1_000);
        assert!(has(&shelf, 1, 1_000));
        assert!(has(&shelf, 1, 1_000 + TTL - 1));
        assert!(!has(&shelf, 1, 1_000 + TTL));
        // The clock went back: the answer's age is unknown.
        assert!(!has(&shelf, 1, 999));
    }

    #[test]
    fn a_fill_read_before_a_write_is_dropped() {
        let shelf = shelf(4);
        let before = shelf.generation();
        // The write lands while the read is under way.
        shelf.invalidate(|contents| contents.remove(&1));
        shelf.fill(before, 1, "old row", 0);
        assert!(!has(&shelf, 1, 0));
        shelf.fill(shelf.generation(), 1, "new row", 0);
        assert_eq!(shelf.get(&1, 0, |value| Some(*value)), Some("new row"));
    }

    #[test]
    fn stale_entries_leave_first_then_the_oldest() {
        let shelf = shelf(4);
        fill(&shelf, 1, 0);
        fill(&shelf, 2, 0);
        fill(&shelf, 3, 50);
        fill(&shelf, 4, 60);
        // At 120 keys 1 and 2 are stale: they make the room.
        fill(&shelf, 5, 120);
        assert_eq!(shelf.len(), 3);
        assert!(has(&shelf, 3, 120) && has(&shelf, 4, 120) && has(&shelf, 5, 120));
        fill(&shelf, 6, 121);
        // Full of fresh entries: the oldest eighth (at least one) goes.
        fill(&shelf, 7, 122);
        assert_eq!(shelf.len(), 4);
        assert!(!has(&shelf, 3, 122));
        assert!(has(&shelf, 7, 122));
    }

    #[test]
    fn a_large_shelf_never_outgrows_its_bound() {
        let shelf = shelf(64);
        for key in 0..1_000 {
            fill(&shelf, key, 0);
            assert!(shelf.len() <= 64);
        }
        assert!(has(&shelf, 999, 0));
    }

    /// An index of even keys by their half, as the registrations keep devices by node.
    #[derive(Debug, Default)]
    struct Halves(HashMap<u32, u32>);

    impl Index<u32, &'static str> for Halves {
        fn remember(&mut self, key: &u32, _value: &&'static str) -> Option<u32> {
            self.0.insert(key / 2, *key)
        }

        fn forget(&mut self, key: &u32, _value: &&'static str) {
            if self.0.get(&(key / 2)) == Some(key) {
                self.0.remove(&(key / 2));
            }
        }
    }

    #[test]
    fn the_index_follows_every_entry_in_and_out() {
        let shelf: Shelf<u32, &'static str, Halves> = Shelf::new(2, TTL);
        shelf.fill(shelf.generation(), 4, "four", 0);
        // 5 has the same half: 4 is no longer reachable by it and leaves.
        shelf.fill(shelf.generation(), 5, "five", 0);
        assert_eq!(shelf.len(), 1);
        assert_eq!(shelf.get(&4, 0, |value| Some(*value)), None);
        shelf.fill(shelf.generation(), 6, "six", 1);
        shelf.fill(shelf.generation(), 8, "eight", 2);
        // Full: 5, the oldest, was evicted and its half forgotten.
        shelf.invalidate(|contents| {
            assert_eq!(contents.index.0.get(&2), None);
            assert_eq!(contents.index.0.get(&4), Some(&8));
            contents.clear();
            assert!(contents.index.0.is_empty());
        });
        assert_eq!(shelf.len(), 0);
    }
}
