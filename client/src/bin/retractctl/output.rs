//! Printing results: ProtoJSON lines (`--output json`) or aligned tables.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

use crate::args::OutputFormat;

/// Where results go, and how.
#[derive(Clone, Copy)]
pub struct Output {
    pub format: OutputFormat,
}

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(retract_client::FILE_DESCRIPTOR_SET)
            .expect("the embedded descriptor set of retract-proto decodes")
    })
}

/// `message` (the contract's `retract.v1.<name>`) as ProtoJSON with proto field names and
/// default values included.
pub fn to_json<M: prost::Message>(message: &M, name: &str) -> serde_json::Value {
    let full = format!("retract.v1.{name}");
    let Some(desc) = pool().get_message_by_name(&full) else {
        return serde_json::json!({ "error": format!("unknown message {full}") });
    };
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false);
    DynamicMessage::decode(desc, message.encode_to_vec().as_slice())
        .map_err(|e| e.to_string())
        .and_then(|m| {
            m.serialize_with_options(serde_json::value::Serializer, &options)
                .map_err(|e| e.to_string())
        })
        .unwrap_or_else(|e| serde_json::json!({ "error": e }))
}

impl Output {
    pub fn json(self) -> bool {
        self.format == OutputFormat::Json
    }

    /// Prints `message` as one JSON line.
    pub fn line<M: prost::Message>(self, message: &M, name: &str) {
        crate::say!("{}", to_json(message, name));
    }

    /// Prints `rows` under `headers`, columns aligned.
    pub fn table(self, headers: &[&str], rows: Vec<Vec<String>>) {
        if rows.is_empty() {
            crate::say!("(none)");
            return;
        }
        let mut table = comfy_table::Table::new();
        table
            .load_preset(comfy_table::presets::NOTHING)
            .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
            .set_header(headers.iter().copied());
        for row in rows {
            table.add_row(row);
        }
        for line in table.lines() {
            let line = line.trim_end();
            crate::say!("{}", line.strip_prefix(' ').unwrap_or(line));
        }
    }
}

/// An enum value's name without its type prefix: `RETRACT_STATUS_GRANTED` → `GRANTED`.
pub fn short(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_owned()
}

/// A timestamp as RFC 3339 (UTC, seconds), or `-`.
pub fn time(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map_or_else(
            || "-".to_owned(),
            |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        )
}

/// An RFC 3339 time as a timestamp.
pub fn parse_time(text: &str) -> Result<prost_types::Timestamp, String> {
    let t = chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|e| format!("{text:?} is not an RFC 3339 time (2026-11-27T10:00:00Z): {e}"))?;
    Ok(prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    })
}
