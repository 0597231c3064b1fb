//! Kubeflow's multi-user mode: which user, if any, the trusted proxy's header names (pure).
//!
//! KFP's API server believes `kubeflow-userid` from anyone who reaches it and relies on an
//! Istio `AuthorizationPolicy` to keep forged headers out. Here the header is believed only
//! when the connection provably comes from the trusted proxy (its peer address is in
//! `trusted_proxies`: with Istio's sidecar, 127.0.0.6, the address the sidecar forwards
//! from), and even then only a plain user: the value must carry the configured prefix, may
//! not be a `system:` identity (a node, a service account, a control-plane component) unless
//! allowed, and must appear once, so a forged copy placed before the proxy's cannot win. The
//! API impersonates that user only, never a group. docs/security.md compares this with KFP.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

use super::error::{ApiError, Code};

/// The settings of multi-user mode.
#[derive(Clone, Debug)]
pub struct MultiUser {
    /// KFP's `KUBEFLOW_USERID_HEADER`.
    pub header: String,
    /// KFP's `KUBEFLOW_USERID_PREFIX`: every value must start with it ("" for none).
    pub prefix: String,
    /// Peers whose header is believed (the proxy's address as this process sees it).
    pub trusted_proxies: Vec<IpNet>,
    /// Accept `system:` user names from the header (never needed by Kubeflow's proxies).
    pub allow_system: bool,
}

impl MultiUser {
    /// KFP's header and prefix settings, with no trusted proxy yet.
    pub fn new(header: &str, prefix: &str) -> MultiUser {
        MultiUser {
            header: header.to_string(),
            prefix: prefix.to_string(),
            trusted_proxies: Vec::new(),
            allow_system: false,
        }
    }
}

/// The longest user name accepted from the header (Kubernetes puts no bound on user names;
/// an e-mail address has at most 254 characters).
const MAX_USER_BYTES: usize = 256;

fn refuse(message: String) -> ApiError {
    ApiError::new(Code::Unauthenticated, message)
}

/// The user the header names, `None` when there is no header, or why it is refused.
pub fn proxied_user(headers: &HeaderMap, peer: Option<IpAddr>, mu: &MultiUser) -> Result<Option<String>, ApiError> {
    let header = mu.header.as_str();
    let mut values = headers.get_all(header).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(refuse(format!(
            "more than one {header} header: refused, since the proxy's cannot be told from another"
        )));
    }
    let trusted = peer.is_some_and(|ip| mu.trusted_proxies.iter().any(|net| net.contains(&ip.to_canonical())));
    if !trusted {
        return Err(refuse(format!(
            "the {header} header is accepted only from the trusted proxy; authenticate with a bearer token instead"
        )));
    }
    let value = value
        .to_str()
        .ok()
        .filter(|v| v.len() <= MAX_USER_BYTES)
        .ok_or_else(|| refuse(format!("the {header} header does not hold a user name")))?;
    let user = value.strip_prefix(mu.prefix.as_str()).ok_or_else(|| {
        refuse(format!(
            "the {header} header does not start with the expected prefix {:?}",
            mu.prefix
        ))
    })?;
    if user.trim().is_empty() || user.trim() != user {
        return Err(refuse(format!("the {header} header does not hold a user name")));
    }
    if user.starts_with("system:") && !mu.allow_system {
        return Err(refuse(format!(
            "the {header} header may not name a system: identity (a node, a service account, a control-plane component)"
        )));
    }
    Ok(Some(user.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mu() -> MultiUser {
        MultiUser {
            trusted_proxies: vec!["127.0.0.6/32".parse().unwrap()],
            ..MultiUser::new("kubeflow-userid", "accounts.google.com:")
        }
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("kubeflow-userid", v.parse().unwrap());
        }
        h
    }

    const PROXY: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 6)));
    const OTHER: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)));

    fn refused(values: &[&str], peer: Option<IpAddr>, mu: &MultiUser) -> String {
        let e = proxied_user(&headers(values), peer, mu).unwrap_err();
        assert_eq!(e.http_status(), 401);
        e.message
    }

    #[test]
    fn the_trusted_proxys_single_prefixed_user_is_believed() {
        let user = proxied_user(&headers(&["accounts.google.com:alice@example.com"]), PROXY, &mu());
        assert_eq!(user.unwrap().as_deref(), Some("alice@example.com"));
        assert_eq!(proxied_user(&headers(&[]), OTHER, &mu()).unwrap(), None, "no header");
        let mapped = "::ffff:127.0.0.6".parse().ok();
        let user = proxied_user(&headers(&["accounts.google.com:alice@example.com"]), mapped, &mu());
        assert!(user.is_ok(), "an IPv4 peer seen on an IPv6 socket");
    }

    #[test]
    fn a_header_from_anyone_else_is_refused() {
        let m = refused(&["accounts.google.com:alice@example.com"], OTHER, &mu());
        assert!(m.contains("only from the trusted proxy"), "{m}");
        refused(&["accounts.google.com:alice@example.com"], None, &mu());
        let nobody = MultiUser::new("kubeflow-userid", "accounts.google.com:");
        refused(&["accounts.google.com:alice@example.com"], PROXY, &nobody);
    }

    #[test]
    fn values_the_proxy_would_not_send_are_refused() {
        let m = refused(&["alice@example.com"], PROXY, &mu());
        assert!(m.contains("expected prefix"), "{m}");
        for system in [
            "accounts.google.com:system:serviceaccount:kube-system:generic-garbage-collector",
            "accounts.google.com:system:kube-controller-manager",
            "accounts.google.com:system:node:worker-1",
        ] {
            let m = refused(&[system], PROXY, &mu());
            assert!(m.contains("system: identity"), "{m}");
        }
        let allowed = MultiUser {
            allow_system: true,
            ..mu()
        };
        assert!(proxied_user(&headers(&["accounts.google.com:system:admin"]), PROXY, &allowed).is_ok());
        refused(&["accounts.google.com:"], PROXY, &mu());
        refused(&["accounts.google.com: alice"], PROXY, &mu());
        let long = format!("accounts.google.com:{}", "a".repeat(300));
        refused(&[&long], PROXY, &mu());
    }

    #[test]
    fn a_repeated_header_is_refused_whichever_copy_comes_first() {
        let m = refused(
            &[
                "accounts.google.com:mallory@example.com",
                "accounts.google.com:alice@example.com",
            ],
            PROXY,
            &mu(),
        );
        assert!(m.contains("more than one"), "{m}");
    }

    #[test]
    fn without_a_prefix_setting_any_user_name_is_read_as_it_is() {
        let plain = MultiUser {
            prefix: String::new(),
            ..mu()
        };
        let user = proxied_user(&headers(&["alice@example.com"]), PROXY, &plain);
        assert_eq!(user.unwrap().as_deref(), Some("alice@example.com"));
    }
}
