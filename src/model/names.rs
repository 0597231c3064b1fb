//! Kubernetes' rules for names, checked before a name is used to spend anything (a
//! SubjectAccessReview, a cache entry, a request to the API server) (pure).

/// A DNS-1123 label (namespaces): 1-63 characters of `[a-z0-9-]`, starting and ending with a
/// letter or digit.
pub fn is_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (1..=63).contains(&bytes.len())
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes.iter().all(|b| edge(b) || *b == b'-')
}

/// A DNS-1123 subdomain (most object names, service accounts): at most 253 characters of
/// labels joined by dots.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// Why a namespace is refused, for a 400 (the value is quoted only when short).
pub fn namespace_problem(field: &str, value: &str) -> Option<String> {
    if is_dns1123_label(value) {
        return None;
    }
    let shown = if value.len() <= 63 {
        format!("{value:?}")
    } else {
        format!("of {} characters", value.len())
    };
    Some(format!(
        "{field}: namespace {shown} is not a valid namespace name (lowercase letters, digits and '-', at most 63 characters)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains() {
        for ok in ["a", "default", "team-a", "0x", &"a".repeat(63)] {
            assert!(is_dns1123_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", &"a".repeat(64), "ü"] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
        assert!(is_dns1123_subdomain("pipeline-runner"));
        assert!(is_dns1123_subdomain("a.b-c.d"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(!is_dns1123_subdomain(&"a.".repeat(130)));
    }

    #[test]
    fn a_long_namespace_is_not_echoed() {
        let long = "x".repeat(1 << 20);
        let message = namespace_problem("resource_reference_key.id", &long).unwrap();
        assert!(message.len() < 200, "{message}");
        assert_eq!(namespace_problem("f", "default"), None);
    }
}
