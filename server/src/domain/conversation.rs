//! Following a conversation: Exchange's `conversationIndex` (base64 of a 22-byte header plus
//! one 5-byte block per reply or forward) says which messages descend from the retracted one,
//! and how many hops away: a descendant's index begins with its ancestor's.

use base64::{Engine as _, engine::general_purpose::STANDARD};

/// Bytes of an index's header (a new conversation).
const HEADER_LEN: usize = 22;
/// Bytes each reply or forward adds.
const CHILD_LEN: usize = 5;
/// Deepest thread accepted (a longer index is treated as malformed, so it stays bounded).
const MAX_CHILDREN: usize = 255;

/// A message's position in its thread, decoded from Graph's `conversationIndex`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationIndex(Vec<u8>);

impl ConversationIndex {
    /// Decodes Graph's base64 value; `None` for a missing or malformed index (not base64, or
    /// not a header plus whole child blocks).
    pub fn decode(raw: &str) -> Option<Self> {
        let bytes = STANDARD.decode(raw.trim()).ok()?;
        let well_formed = bytes.len() >= HEADER_LEN
            && bytes.len() <= HEADER_LEN + CHILD_LEN * MAX_CHILDREN
            && (bytes.len() - HEADER_LEN).is_multiple_of(CHILD_LEN);
        well_formed.then_some(Self(bytes))
    }

    /// Graph's base64 value.
    pub fn encode(&self) -> String {
        STANDARD.encode(&self.0)
    }

    /// How many hops below `ancestor` this message is (`Some(0)` for the same message's
    /// index), or `None` when it does not descend from it — an ancestor or a sibling thread.
    pub fn hops_below(&self, ancestor: &Self) -> Option<u8> {
        let extra = self.0.len().checked_sub(ancestor.0.len())?;
        if !self.0.starts_with(&ancestor.0) || !extra.is_multiple_of(CHILD_LEN) {
            return None;
        }
        u8::try_from(extra / CHILD_LEN).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(blocks: usize, seed: u8) -> ConversationIndex {
        let mut bytes = vec![1u8];
        bytes.extend(std::iter::repeat_n(seed, HEADER_LEN - 1));
        for b in 0..blocks {
            bytes.extend([seed, u8::try_from(b).unwrap(), 0, 0, 7]);
        }
        ConversationIndex(bytes)
    }

    #[test]
    fn descendants_are_counted_in_hops_and_relatives_are_not() {
        let phish = index(1, 9); // itself a reply inside an older thread
        let thread_start = index(0, 9);
        let reply = ConversationIndex([phish.0.clone(), vec![1, 2, 3, 4, 5]].concat());
        let reply_of_reply = ConversationIndex([reply.0.clone(), vec![5, 4, 3, 2, 1]].concat());
        assert_eq!(phish.hops_below(&phish), Some(0));
        assert_eq!(reply.hops_below(&phish), Some(1));
        assert_eq!(reply_of_reply.hops_below(&phish), Some(2));
        assert_eq!(
            thread_start.hops_below(&phish),
            None,
            "an ancestor is out of scope"
        );
        let sibling = ConversationIndex([thread_start.0, vec![8, 8, 8, 8, 8]].concat());
        assert_eq!(
            sibling.hops_below(&phish),
            None,
            "a sibling is out of scope"
        );
        assert_eq!(index(0, 3).hops_below(&phish), None, "another thread");
    }

    #[test]
    fn malformed_indexes_are_refused_not_trusted() {
        assert!(ConversationIndex::decode("not base64!").is_none());
        assert!(ConversationIndex::decode(&STANDARD.encode([1u8; 21])).is_none());
        assert!(ConversationIndex::decode(&STANDARD.encode([1u8; 25])).is_none());
        let ok = STANDARD.encode([1u8; 27]);
        assert_eq!(ConversationIndex::decode(&ok).unwrap().encode(), ok);
    }
}
