//! How many unary calls one caller may have in progress at once, besides its request rate: a
//! caller that opens slow calls faster than they finish would otherwise hold the server's
//! whole concurrency limit. Server streams have their own caps.

use std::{collections::HashMap, sync::Arc, sync::Mutex};

/// Calls in progress per caller (keyed by token subject).
pub struct CallerConcurrency {
    /// Most unary calls one caller may have in progress; 0 turns the limit off.
    limit: usize,
    in_progress: Arc<Mutex<HashMap<String, usize>>>,
}

/// One call in progress; the caller's count goes down when it is dropped.
pub struct CallSlot {
    caller: String,
    in_progress: Arc<Mutex<HashMap<String, usize>>>,
}

impl CallerConcurrency {
    /// At most `limit` unary calls in progress per caller (0: unlimited).
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            in_progress: Arc::default(),
        }
    }

    /// The most calls one caller may have in progress (0: unlimited).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A slot for one more call of `caller`, or `None` when it has `limit` in progress.
    pub fn try_enter(&self, caller: &str) -> Option<CallSlot> {
        if self.limit == 0 {
            // Unlimited: a slot that counts nothing.
            return Some(CallSlot {
                caller: String::new(),
                in_progress: Arc::default(),
            });
        }
        let mut in_progress = self
            .in_progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = in_progress.entry(caller.to_owned()).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(CallSlot {
            caller: caller.to_owned(),
            in_progress: self.in_progress.clone(),
        })
    }
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        let mut in_progress = self
            .in_progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = in_progress.get_mut(&self.caller) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                in_progress.remove(&self.caller);
            }
        }
    }
}

/// Server streams open at once, per caller and in all: a watch holds its slot for as long as
/// it streams (minutes), so streams are capped apart from unary calls.
pub struct StreamCaps {
    per_caller: CallerConcurrency,
    total: CallerConcurrency,
}

/// One open stream, counted per caller and in all until dropped.
pub struct StreamSlot {
    _caller: CallSlot,
    _total: CallSlot,
}

/// Why a stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamsExhausted {
    /// The caller has `limit` streams open.
    Caller { limit: usize },
    /// The server has `limit` streams open.
    Server { limit: usize },
}

impl StreamCaps {
    /// At most `per_caller` streams open per caller and `total` in all (0: unlimited).
    pub fn new(per_caller: usize, total: usize) -> Self {
        Self {
            per_caller: CallerConcurrency::new(per_caller),
            total: CallerConcurrency::new(total),
        }
    }

    /// A slot for one more stream of `caller`.
    pub fn try_open(&self, caller: &str) -> Result<StreamSlot, StreamsExhausted> {
        let mine = self
            .per_caller
            .try_enter(caller)
            .ok_or(StreamsExhausted::Caller {
                limit: self.per_caller.limit(),
            })?;
        let all = self.total.try_enter("").ok_or(StreamsExhausted::Server {
            limit: self.total.limit(),
        })?;
        Ok(StreamSlot {
            _caller: mine,
            _total: all,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_gets_its_limit_and_a_slot_back_when_a_call_ends() {
        let limits = CallerConcurrency::new(2);
        let first = limits.try_enter("a").expect("first");
        let _second = limits.try_enter("a").expect("second");
        assert!(limits.try_enter("a").is_none(), "the third waits its turn");
        assert!(
            limits.try_enter("b").is_some(),
            "another caller has its own"
        );
        drop(first);
        assert!(
            limits.try_enter("a").is_some(),
            "a finished call frees a slot"
        );
    }

    #[test]
    fn streams_are_capped_per_caller_and_in_all() {
        let caps = StreamCaps::new(2, 3);
        let a1 = caps.try_open("a").expect("a's first");
        let _a2 = caps.try_open("a").expect("a's second");
        assert_eq!(
            caps.try_open("a").err(),
            Some(StreamsExhausted::Caller { limit: 2 })
        );
        let _b1 = caps.try_open("b").expect("b's first");
        assert_eq!(
            caps.try_open("b").err(),
            Some(StreamsExhausted::Server { limit: 3 })
        );
        drop(a1);
        assert!(
            caps.try_open("b").is_ok(),
            "a closed stream frees both slots"
        );
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let limits = CallerConcurrency::new(0);
        let slots: Vec<_> = (0..1000).filter_map(|_| limits.try_enter("a")).collect();
        assert_eq!(slots.len(), 1000);
    }
}
