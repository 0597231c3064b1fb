//! How a pass, a request and a status read in the trace.

use serde_json::Value;

use super::{
    instance::{Instance, Lag},
    records::{Detail, Request},
    status_json::{summary_type, suspended, time_at},
    time::tick,
};
use crate::controller::reconcile::Next;

/// One line for a pass: who ran it on what view, its requests, how it ended, what it
/// published.
pub fn pass(
    id: u64,
    instance: &Instance,
    lag: &Lag,
    requests: &[Request],
    result: &Result<Next, String>,
    next: Next,
    published: &[String],
) -> String {
    let view = &instance.view;
    let said: Vec<String> = requests.iter().map(request).collect();
    let outcome = match result {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("ERR {e}"),
    };
    format!(
        "pass {id} by {}#{} (view gen {} rv {}{}): [{}] {outcome} -> {next:?} {published:?}",
        instance.label,
        instance.incarnation.0,
        view.metadata.generation.unwrap_or(0),
        view.metadata.resource_version.as_deref().unwrap_or("?"),
        if lag.foreign() { ", behind" } else { "" },
        said.join("; ")
    )
}

/// The status after a pass, in a few words: summary, trigger, suspension, backfill.
pub fn status(status: &Value) -> String {
    let time = |p: &str| time_at(status, p).map_or("-".to_string(), tick);
    let index = status
        .pointer("/trigger/lastWorkflowIndex")
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    let mut words = format!(
        " | {} last {} #{index} next {} skip {}",
        summary_type(status).unwrap_or("-"),
        time("/trigger/lastTriggeredTime"),
        time("/trigger/nextTriggeredTime"),
        time("/trigger/skipThrough"),
    );
    if suspended(status) {
        words.push_str(" SUSPENDED");
    }
    if let Some(phase) = status.pointer("/backfill/phase").and_then(|p| p.as_str()) {
        words.push_str(&format!(" backfill {phase} through {}", time("/backfill/through")));
    }
    words
}

/// An error's message up to its first parenthesis (kube's `Status` debug output follows).
pub fn short(message: &str) -> &str {
    message.split(" (Status").next().unwrap_or(message)
}

pub fn request(r: &Request) -> String {
    let fault = r.fault.map_or(String::new(), |f| format!(" [{f}]"));
    let what = match &r.detail {
        Detail::Create { tick: t, origin } => format!(" ({origin}, tick {})", t.map_or("-".into(), tick)),
        Detail::Get {
            found: Some((origin, finished)),
        } => {
            format!(" ({origin}{})", if *finished { ", finished" } else { "" })
        }
        Detail::Delete { was_active: true } => " (active)".into(),
        _ => String::new(),
    };
    format!("{} {} {}{fault}{what}", r.method, r.name, r.code)
}
