//! Outlook's conversation index (`PidTagConversationIndex`, Graph's base64 `conversationIndex`).
//!
//! As [MS-OXOMSG] 2.2.1.3 and the MAPI "Tracking Conversations" page describe it: a new
//! conversation gets a 22-byte header — one reserved byte `0x01`, five bytes of the current
//! FILETIME (its 40 most significant bits, big-endian) and a 16-byte GUID made for the thread.
//! Every reply or forward copies its parent's index and appends one 5-byte child block: a
//! delta-code bit, 31 bits of the time elapsed since the header's time, then four random bits
//! and a four-bit sequence count.
//!
//! So an index begins with the index of every ancestor, and a message is
//! `(len - ancestor_len) / 5` hops below an ancestor. The simulator derives the GUID and the
//! random bits from the internet message id, so a seed gives the same indexes on every run.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// Length of the header block.
pub const HEADER_LEN: usize = 22;
/// Length of each child (response level) block.
pub const CHILD_LEN: usize = 5;

/// 100 ns intervals between 1601-01-01 and 1970-01-01.
const FILETIME_UNIX_EPOCH: u64 = 116_444_736_000_000_000;

fn filetime(at: DateTime<Utc>) -> u64 {
    let micros = u64::try_from(at.timestamp_micros()).unwrap_or(0);
    FILETIME_UNIX_EPOCH.saturating_add(micros.saturating_mul(10))
}

fn hash(kind: &[u8], name: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(kind);
    hasher.update(name.as_bytes());
    hasher.finalize().into()
}

/// The header block of a new conversation started by `internet_message_id` at `at`.
pub fn header(internet_message_id: &str, at: DateTime<Utc>) -> Vec<u8> {
    let time = filetime(at) >> 24;
    let mut index = Vec::with_capacity(HEADER_LEN);
    index.push(0x01);
    index.extend_from_slice(&time.to_be_bytes()[3..8]);
    index.extend_from_slice(&hash(b"conversation-guid", internet_message_id)[..16]);
    index
}

/// `parent` plus one child block for the reply or forward `internet_message_id` sent at `at`.
/// A parent shorter than a header (a malformed index) is returned unchanged plus the block.
pub fn child(parent: &[u8], internet_message_id: &str, at: DateTime<Utc>) -> Vec<u8> {
    let header_time = parent
        .get(1..6)
        .map(|t| t.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)) << 24)
        .unwrap_or(0);
    let delta = filetime(at).saturating_sub(header_time);
    // Delta code 0: bits 18..49 of the difference; 1: bits 23..54 (for long threads).
    let block_time: u32 = if delta >> 49 == 0 {
        u32::try_from(delta >> 18).unwrap_or(u32::MAX) & 0x7FFF_FFFF
    } else {
        0x8000_0000 | (u32::try_from(delta >> 23).unwrap_or(u32::MAX) & 0x7FFF_FFFF)
    };
    let depth = parent.len().saturating_sub(HEADER_LEN) / CHILD_LEN + 1;
    let random = hash(b"conversation-child", internet_message_id)[0] & 0xF0;
    let sequence = u8::try_from(depth % 16).unwrap_or(0);
    let mut index = parent.to_vec();
    index.extend_from_slice(&block_time.to_be_bytes());
    index.push(random | sequence);
    index
}

/// Base64, as Graph renders `conversationIndex`.
pub fn encode(index: &[u8]) -> String {
    STANDARD.encode(index)
}

/// The raw bytes of a `conversationIndex` value; `None` if it is not base64.
pub fn decode(value: &str) -> Option<Vec<u8>> {
    STANDARD.decode(value).ok()
}

/// Whether `index` has the documented shape: a 22-byte header starting with `0x01`, then
/// whole 5-byte child blocks.
pub fn is_well_formed(index: &[u8]) -> bool {
    index.len() >= HEADER_LEN
        && (index.len() - HEADER_LEN).is_multiple_of(CHILD_LEN)
        && index.first() == Some(&0x01)
}

/// How many replies/forwards `descendant` is below `ancestor` (0 for the same message), or
/// `None` if `ancestor` is not an ancestor of it. Both are Graph's base64 values.
pub fn hops_between(ancestor: &str, descendant: &str) -> Option<usize> {
    let ancestor = decode(ancestor)?;
    let descendant = decode(descendant)?;
    if !is_well_formed(&ancestor) || !is_well_formed(&descendant) {
        return None;
    }
    descendant
        .starts_with(&ancestor)
        .then(|| (descendant.len() - ancestor.len()) / CHILD_LEN)
}

/// A deterministic value that is valid base64 but not a conversation index (19 bytes, wrong
/// reserved byte), for testing clients' fallbacks.
pub fn malformed(internet_message_id: &str) -> String {
    let mut bytes = vec![0x7F];
    bytes.extend_from_slice(&hash(b"conversation-malformed", internet_message_id)[..18]);
    encode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 9, minute, 0).unwrap()
    }

    #[test]
    fn header_is_22_bytes_with_reserved_byte_and_stable_guid() {
        let a = header("<a@x>", at(0));
        assert_eq!(a.len(), HEADER_LEN);
        assert_eq!(a[0], 0x01);
        assert_eq!(a, header("<a@x>", at(0)));
        assert_ne!(a[6..], header("<b@x>", at(0))[6..]);
    }

    #[test]
    fn children_extend_their_parent_by_five_bytes() {
        let root = header("<a@x>", at(0));
        let reply = child(&root, "<b@x>", at(5));
        let forward = child(&reply, "<c@x>", at(9));
        assert!(reply.starts_with(&root) && forward.starts_with(&reply));
        assert_eq!(forward.len(), HEADER_LEN + 2 * CHILD_LEN);
        assert_eq!(hops_between(&encode(&root), &encode(&forward)), Some(2));
        assert_eq!(hops_between(&encode(&forward), &encode(&root)), None);
        assert_eq!(hops_between(&malformed("<a@x>"), &encode(&root)), None);
        // The time since the header's (truncated) time, in units of 2^18 * 100 ns.
        let delta = u32::from_be_bytes([reply[22], reply[23], reply[24], reply[25]]);
        let header_time = (filetime(at(0)) >> 24) << 24;
        assert_eq!(u64::from(delta), (filetime(at(5)) - header_time) >> 18);
    }
}
