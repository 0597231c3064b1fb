//! Errors of the Kubernetes client as every part of the process reads them: the text a user
//! sees, and whether retrying can help.

/// A Kubernetes error as a user reads it: the API server's message and code, never the Rust
/// debug form of its `Status` that kube's own text carries.
pub fn said(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.message.is_empty() => format!("HTTP {}", s.code),
        kube::Error::Api(s) => format!("{} (HTTP {})", s.message, s.code),
        other => other.to_string(),
    }
}

/// True when retrying the same request cannot help until something else changes (RBAC,
/// admission, a schema, a missing kind): 400, 403, 404, 405, 413, 422. Anything else (5xx,
/// 429, timeouts, connection errors) is transient.
pub fn is_lasting(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if matches!(s.code, 400 | 403 | 404 | 405 | 413 | 422))
}

/// HTTP status of an API error, for messages.
pub fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}
