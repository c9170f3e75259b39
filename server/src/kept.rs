//! Values kept in memory under the version of what they were made from.
//!
//! The Retract tab's recipient pages (keyed by the delivery row's version) and the tab's rows
//! (keyed by the page read they were made from) are kept this way: a version superseded by a
//! change is never asked for again, so rather than track use, a full map forgets everything
//! at once and fills again with what is asked for now.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

/// At most `max` values by key, shared by every clone.
#[derive(Debug)]
pub struct Kept<K, V> {
    max: usize,
    entries: Arc<Mutex<HashMap<K, Arc<V>>>>,
}

impl<K, V> Clone for Kept<K, V> {
    fn clone(&self) -> Self {
        Self {
            max: self.max,
            entries: self.entries.clone(),
        }
    }
}

impl<K: Eq + Hash, V> Kept<K, V> {
    /// Nothing kept yet; at most `max` values.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            entries: Arc::default(),
        }
    }

    /// The value kept under `key`.
    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        self.lock().get(key).cloned()
    }

    /// Keeps `value` under `key` (replacing one kept there); when full, forgets everything
    /// else first. What is forgotten is dropped after the lock is released.
    pub fn keep(&self, key: K, value: Arc<V>) {
        let forgotten = {
            let mut entries = self.lock();
            let forgotten = if entries.len() >= self.max && !entries.contains_key(&key) {
                std::mem::take(&mut *entries)
            } else {
                HashMap::new()
            };
            entries.insert(key, value);
            forgotten
        };
        drop(forgotten);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Arc<V>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_map_forgets_everything_but_what_it_keeps_now() {
        let kept = Kept::new(2);
        kept.keep("a", Arc::new(1));
        kept.keep("b", Arc::new(2));
        let shared = kept.clone();
        assert_eq!(
            shared.get(&"a").as_deref(),
            Some(&1),
            "clones share what is kept"
        );

        // Full: replacing a kept key forgets nothing.
        kept.keep("b", Arc::new(3));
        assert_eq!(kept.get(&"a").as_deref(), Some(&1));
        assert_eq!(kept.get(&"b").as_deref(), Some(&3));

        // Full: a new key forgets the rest.
        kept.keep("c", Arc::new(4));
        assert_eq!(kept.get(&"a"), None);
        assert_eq!(kept.get(&"b"), None);
        assert_eq!(shared.get(&"c").as_deref(), Some(&4));
    }
}
