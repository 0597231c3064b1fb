//! What the world's status (JSON, as the operator wrote it) says, read by JSON pointer so the
//! checks do not depend on the operator's types.

use jiff::Timestamp;
use serde_json::Value;

use crate::model::crd::Summary;

/// A time field of a status (`/trigger/lastTriggeredTime`), if set.
pub fn time_at(status: &Value, pointer: &str) -> Option<Timestamp> {
    status.pointer(pointer)?.as_str()?.parse().ok()
}

/// Whether the status says the failure policy holds the schedule suspended.
pub fn suspended(status: &Value) -> bool {
    status.pointer("/suspension/suspendedAt").is_some_and(|v| !v.is_null())
}

/// KFP's summary condition: the last condition of a summary type.
pub fn summary_type(status: &Value) -> Option<&str> {
    let conditions = status.get("conditions")?.as_array()?;
    conditions
        .iter()
        .rev()
        .filter_map(|c| c["type"].as_str())
        .find(|t| Summary::ALL.iter().any(|s| s.as_str() == *t))
}
