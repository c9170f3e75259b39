//! Identifier shapes: GUIDs, Exchange item ids, conversation ids, opaque codes.
//!
//! Ids are derived by hashing so a fixture produces the same ids on every run.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// A GUID derived from `kind` and `name`, stable across runs.
pub fn stable_guid(kind: &str, name: &str) -> String {
    let hash = digest(&[kind.as_bytes(), name.as_bytes()]);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// A conversation id in Exchange's shape (standard base64, may contain `+`, `/` and `=`).
pub fn conversation_id(internet_message_id: &str) -> String {
    let hash = digest(&[b"conversation", internet_message_id.as_bytes()]);
    let mut bytes = vec![0x00, 0x10, 0x24, 0x00];
    bytes.extend_from_slice(&hash[..28]);
    STANDARD.encode(bytes)
}

/// The `conversationId` a thread has in one mailbox. Exchange's ids embed the mailbox (as a real
/// `AAQkAG…` id starts with the mailbox's GUID), so the same thread has a different id in each
/// mailbox. Standard base64 like [`conversation_id`].
pub fn mailbox_conversation_id(user_id: &str, thread: &str) -> String {
    let mailbox = digest(&[b"mailbox", user_id.to_ascii_lowercase().as_bytes()]);
    let conversation = digest(&[b"thread", thread.as_bytes()]);
    let mut bytes = vec![0x00, 0x04, 0x24, 0x00];
    bytes.extend_from_slice(&mailbox[..16]);
    bytes.extend_from_slice(&[0x10, 0x00]);
    bytes.extend_from_slice(&conversation[..16]);
    STANDARD.encode(bytes)
}

/// Number of raw bytes in an item id: its base64url form ends in one `=` like Exchange's ids.
const ITEM_ID_BYTES: usize = 47;

/// An Exchange item id (base64url with padding) for message number `serial` of `user_id`.
pub fn item_id(user_id: &str, serial: u64) -> String {
    let hash = digest(&[b"item", user_id.as_bytes(), &serial.to_le_bytes()]);
    let mut bytes = vec![0x00, 0x03, 0x24, 0x00];
    bytes.extend_from_slice(&hash);
    bytes.extend_from_slice(&serial.to_be_bytes());
    bytes.extend_from_slice(&[0x00, 0x00, 0x00]);
    debug_assert_eq!(bytes.len(), ITEM_ID_BYTES);
    URL_SAFE.encode(bytes)
}

/// A folder id in the item-id shape.
pub fn folder_id(user_id: &str, well_known: &str) -> String {
    let hash = digest(&[b"folder", user_id.as_bytes(), well_known.as_bytes()]);
    let mut bytes = vec![0x00, 0x01, 0x2e, 0x00];
    bytes.extend_from_slice(&hash);
    bytes.extend_from_slice(&[0x00; 11]);
    URL_SAFE.encode(bytes)
}

/// Whether `id` has the shape of an item id (Graph answers `ErrorInvalidIdMalformed` otherwise).
pub fn is_well_formed_item_id(id: &str) -> bool {
    URL_SAFE
        .decode(id)
        .is_ok_and(|bytes| bytes.len() == ITEM_ID_BYTES)
}

/// An opaque random token (authorization codes, refresh tokens).
pub fn opaque_token(rng: &mut impl rand::RngCore) -> String {
    let mut bytes = [0u8; 48];
    rng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A request id in GUID shape, unique within one simulator (`instance`) by `serial`.
pub fn request_id(instance: u64, serial: u64) -> String {
    uuid::Uuid::from_u64_pair(instance, serial).to_string()
}
