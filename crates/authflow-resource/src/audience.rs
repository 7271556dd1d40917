//! RFC 8707 audience matching shared by the verifiers: a token is for this resource when one of its `aud`
//! values names it, compared exactly or on the canonical form of both URIs (so `https://MCP.example:443/mcp`
//! names `https://mcp.example/mcp`, but `https://mcp.example/mcp/` does not).

use authflow_core::validation::resource::{ResourcePolicy, ResourceUri};

/// Canonical comparisons only: whether a URI may be used as a resource is the authorization server's call.
const LENIENT: ResourcePolicy = ResourcePolicy { allow_http_non_loopback: true };

fn canonical(s: &str) -> Option<String> {
    ResourceUri::parse(s, &LENIENT).ok().map(|r| r.canonical().to_owned())
}

/// The audiences a verifier accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Audiences {
    exact: Vec<String>,
    canonical: Vec<String>,
}

impl Audiences {
    pub(crate) fn new(accepted: impl IntoIterator<Item = String>) -> Audiences {
        let exact: Vec<String> = accepted.into_iter().collect();
        let canonical = exact.iter().filter_map(|a| canonical(a)).collect();
        Audiences { exact, canonical }
    }

    /// Every spelling worth comparing as a plain string (for JWT validation).
    pub(crate) fn spellings(&self) -> Vec<String> {
        let mut all = self.exact.clone();
        for c in &self.canonical {
            if !all.contains(c) {
                all.push(c.clone());
            }
        }
        all
    }

    /// Whether `aud` names an accepted audience.
    pub(crate) fn accepts(&self, aud: &str) -> bool {
        self.exact.iter().any(|a| a == aud) || canonical(aud).is_some_and(|c| self.canonical.contains(&c))
    }

    pub(crate) fn accepts_any<'a>(&self, auds: impl IntoIterator<Item = &'a str>) -> bool {
        auds.into_iter().any(|a| self.accepts(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_and_exact_matches() {
        let a = Audiences::new(["https://mcp.example/mcp".to_owned(), "urn:notes".to_owned()]);
        assert!(a.accepts("https://mcp.example/mcp"));
        assert!(a.accepts("HTTPS://MCP.example:443/mcp"));
        assert!(a.accepts("urn:notes"));
        assert!(!a.accepts("https://mcp.example/mcp/"));
        assert!(!a.accepts("https://mcp.example/other"));
        assert!(!a.accepts("https://evil.example/mcp"));
        assert!(a.accepts_any(["x", "https://mcp.example/mcp"]));
        assert!(!a.accepts_any([]));
        let root = Audiences::new(["https://mcp.example/".to_owned()]);
        assert!(root.accepts("https://mcp.example"));
        assert_eq!(root.spellings(), vec!["https://mcp.example/".to_owned(), "https://mcp.example".to_owned()]);
    }
}
