//! Upstream identity: the sign-in step delegated to an OpenID Connect provider or to GitHub, while authflow
//! stays the authorization server that asks for consent and issues the MCP tokens.
//!
//! Configure providers with [`AuthServerBuilder::upstream`](crate::AuthServerBuilder::upstream); the types
//! here are `serde::Deserialize`, so a configuration file can embed them (`[[upstream]]` tables, `kind`
//! naming the variant):
//!
//! ```
//! use authflow_server::upstream::UpstreamProvider;
//! let provider: UpstreamProvider = serde_json::from_value(serde_json::json!({
//!     "kind": "oidc",
//!     "id": "corp",
//!     "name": "Corp SSO",
//!     "issuer": "https://login.example.com",
//!     "client_id": "authflow",
//!     "client_secret": "s3cret",
//!     "allow": { "email_domains": ["example.com"] }
//! }))?;
//! assert_eq!(provider.id(), "corp");
//! # Ok::<(), serde_json::Error>(())
//! ```
//!
//! ## The round trip
//! | route | does |
//! |---|---|
//! | `POST {base}/authorize/upstream/{id}` | the sign-in page's button: CSRF check, the carried authorization request validated again, then `303` to the provider with a fresh `state`, `nonce` and PKCE (S256) challenge |
//! | `GET {base}/authorize/upstream/callback` | `state` checked against the browser's cookie and used once, the code exchanged, the identity verified (ID token for OpenID Connect, the user API for GitHub), the allow rules applied, the identity linked to a local user, a session started, and back to `GET /authorize` (consent) |
//!
//! **Where the state lives.** In the browser, not on the server: a short-lived (10 minutes), `HttpOnly`,
//! `SameSite=Lax` cookie holds the `state`, `nonce`, PKCE verifier and the original authorization request,
//! sealed with AES-256-GCM under a key derived from the provider's client secret — a secret every replica
//! already shares by configuration, and that the browser never sees. Any replica can therefore finish a
//! round trip another one started. That the `state` is used once is remembered through the one-time marker
//! store (the database, or Redis when configured), which every replica shares too. One browser has one
//! round trip in flight: starting another (a second tab) replaces the first.
//!
//! **Linking.** An upstream identity maps to a local user without a password whose name is the stable
//! link key: `github:<numeric id>` (GitHub; `github:<api-hash>:<id>` for another GitHub instance) or
//! `oidc:<issuer-hash>:<sub>`. The user is created on first sign-in; an administrator can disable it like
//! any other. Tokens carry the local user's id as `sub`. Upstream tokens are used once, in the callback,
//! and neither stored nor handed to MCP clients.

mod github;
mod oidc;
mod routes;
mod state;

use std::fmt;

use authflow_core::TokenHash;
use authflow_http::SafeHttpClient;
use serde::Deserialize;

pub(crate) use routes::{callback, start};

/// A client secret shared with an upstream provider. Its `Debug` form is redacted.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct UpstreamSecret(String);

impl UpstreamSecret {
    /// Wrap a secret.
    pub fn new(secret: impl Into<String>) -> UpstreamSecret {
        UpstreamSecret(secret.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UpstreamSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UpstreamSecret(<redacted>)")
    }
}

/// How authflow authenticates itself at an OpenID Connect provider's token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamClientAuth {
    /// HTTP Basic (RFC 6749 §2.3.1), the default.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// Who may sign in through a provider. With every list empty, anyone the provider authenticates may;
/// otherwise a person matching **any** entry may (the lists add up, they do not narrow each other).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowRules {
    /// Upstream users: OpenID Connect `sub` values; GitHub logins (case-insensitive) or numeric ids.
    #[serde(default)]
    pub users: Vec<String>,
    /// Verified e-mail addresses (case-insensitive).
    #[serde(default)]
    pub emails: Vec<String>,
    /// Domains of verified e-mail addresses (`example.com` admits `a@example.com`, not `a@sub.example.com`).
    #[serde(default)]
    pub email_domains: Vec<String>,
    /// GitHub organisations the user belongs to (GitHub only; asks for the `read:org` scope).
    #[serde(default)]
    pub orgs: Vec<String>,
}

impl AllowRules {
    fn is_open(&self) -> bool {
        self.users.is_empty() && self.emails.is_empty() && self.email_domains.is_empty() && self.orgs.is_empty()
    }

    /// Whether `identity` may sign in.
    pub(crate) fn admits(&self, identity: &Identity) -> bool {
        if self.is_open() {
            return true;
        }
        let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        let user = self
            .users
            .iter()
            .any(|u| u == &identity.subject || identity.login.as_deref().is_some_and(|login| eq(u, login)));
        let email = identity.emails.iter().any(|e| self.emails.iter().any(|a| eq(a, e)));
        let domain = identity.emails.iter().any(|e| {
            e.rsplit_once('@').is_some_and(|(_, d)| self.email_domains.iter().any(|a| eq(a.trim_start_matches('@'), d)))
        });
        let org = identity.orgs.iter().any(|o| self.orgs.iter().any(|a| eq(a, o)));
        user || email || domain || org
    }
}

/// A generic OpenID Connect provider: discovery, authorization code + PKCE, an ID token signed with RS256,
/// PS256, ES256 or EdDSA.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcUpstream {
    /// The provider's id in URLs and forms: lowercase letters, digits and `-`.
    pub id: String,
    /// The name on the sign-in button (default: the id).
    #[serde(default)]
    pub name: Option<String>,
    /// The provider's issuer identifier; its metadata is read from
    /// `{issuer}/.well-known/openid-configuration` and must name this exact issuer.
    pub issuer: String,
    /// authflow's client id at the provider.
    pub client_id: String,
    /// authflow's client secret at the provider.
    pub client_secret: UpstreamSecret,
    /// How to present the secret (default `client_secret_basic`).
    #[serde(default)]
    pub client_auth: UpstreamClientAuth,
    /// Scopes to ask for (default `openid email profile`; `openid` is always added).
    #[serde(default = "default_oidc_scopes")]
    pub scopes: Vec<String>,
    /// Who may sign in.
    #[serde(default)]
    pub allow: AllowRules,
}

fn default_oidc_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(String::from).to_vec()
}

impl OidcUpstream {
    /// A provider with the default scopes, `client_secret_basic` and no allow rules.
    pub fn new(
        id: impl Into<String>,
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> OidcUpstream {
        OidcUpstream {
            id: id.into(),
            name: None,
            issuer: issuer.into(),
            client_id: client_id.into(),
            client_secret: UpstreamSecret::new(client_secret),
            client_auth: UpstreamClientAuth::default(),
            scopes: default_oidc_scopes(),
            allow: AllowRules::default(),
        }
    }
}

/// GitHub (or GitHub Enterprise Server) through an OAuth app.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubUpstream {
    /// The provider's id in URLs and forms (default `github`).
    #[serde(default = "default_github_id")]
    pub id: String,
    /// The name on the sign-in button (default `GitHub`).
    #[serde(default)]
    pub name: Option<String>,
    /// The OAuth app's client id.
    pub client_id: String,
    /// The OAuth app's client secret.
    pub client_secret: UpstreamSecret,
    /// Where people sign in and the code is exchanged (default `https://github.com`).
    #[serde(default = "default_github_web")]
    pub web_base: String,
    /// The REST API (default `https://api.github.com`).
    #[serde(default = "default_github_api")]
    pub api_base: String,
    /// Who may sign in.
    #[serde(default)]
    pub allow: AllowRules,
}

fn default_github_id() -> String {
    "github".to_owned()
}
fn default_github_web() -> String {
    "https://github.com".to_owned()
}
fn default_github_api() -> String {
    "https://api.github.com".to_owned()
}

impl GithubUpstream {
    /// An OAuth app on github.com, with no allow rules.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> GithubUpstream {
        GithubUpstream {
            id: default_github_id(),
            name: None,
            client_id: client_id.into(),
            client_secret: UpstreamSecret::new(client_secret),
            web_base: default_github_web(),
            api_base: default_github_api(),
            allow: AllowRules::default(),
        }
    }
}

/// An upstream identity provider (`kind = "oidc"` or `kind = "github"` in a configuration file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[non_exhaustive]
pub enum UpstreamProvider {
    /// A generic OpenID Connect provider.
    Oidc(OidcUpstream),
    /// GitHub.
    Github(GithubUpstream),
}

impl UpstreamProvider {
    /// The provider's id.
    pub fn id(&self) -> &str {
        match self {
            UpstreamProvider::Oidc(p) => &p.id,
            UpstreamProvider::Github(p) => &p.id,
        }
    }

    /// The name on its button.
    pub fn name(&self) -> &str {
        match self {
            UpstreamProvider::Oidc(p) => p.name.as_deref().unwrap_or(&p.id),
            UpstreamProvider::Github(p) => p.name.as_deref().unwrap_or("GitHub"),
        }
    }

    fn allow(&self) -> &AllowRules {
        match self {
            UpstreamProvider::Oidc(p) => &p.allow,
            UpstreamProvider::Github(p) => &p.allow,
        }
    }

    fn secret(&self) -> &UpstreamSecret {
        match self {
            UpstreamProvider::Oidc(p) => &p.client_secret,
            UpstreamProvider::Github(p) => &p.client_secret,
        }
    }

    /// Check the configuration; the message says what is wrong.
    fn check(&self) -> Result<(), String> {
        let id = self.id();
        let id_ok = !id.is_empty()
            && id.len() <= 32
            && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && id != "callback";
        if !id_ok {
            return Err(format!("upstream id {id:?}: use 1-32 lowercase letters, digits or '-' (not \"callback\")"));
        }
        if self.secret().expose().is_empty() {
            return Err(format!("upstream {id}: client_secret is empty"));
        }
        let url_ok = |u: &str| url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "https" | "http"));
        match self {
            UpstreamProvider::Oidc(p) => {
                if !url_ok(&p.issuer) || p.issuer.contains(['?', '#']) {
                    return Err(format!("upstream {id}: issuer {:?} is not an http(s) URL", p.issuer));
                }
                if !p.allow.orgs.is_empty() {
                    return Err(format!("upstream {id}: allow.orgs applies to GitHub only"));
                }
            }
            UpstreamProvider::Github(p) => {
                for u in [&p.web_base, &p.api_base] {
                    if !url_ok(u) {
                        return Err(format!("upstream {id}: {u:?} is not an http(s) URL"));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The identity a provider vouched for.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// The local user name it links to (see the module docs).
    pub link: String,
    /// The provider's stable subject (`sub`, or GitHub's numeric id).
    pub subject: String,
    /// A login name, when the provider has one (GitHub).
    pub login: Option<String>,
    /// Verified e-mail addresses.
    pub emails: Vec<String>,
    /// Organisations (GitHub).
    pub orgs: Vec<String>,
}

impl Identity {
    /// How to name the person on a page: the login or an e-mail address, else the subject.
    pub fn label(&self) -> &str {
        self.login.as_deref().or(self.emails.first().map(String::as_str)).unwrap_or(&self.subject)
    }
}

/// A short, stable tag of a URL for link keys: the first 8 bytes of its SHA-256, hex.
fn url_tag(url: &str) -> String {
    TokenHash::of(url).to_hex()[..16].to_owned()
}

/// The configured providers and whether local passwords are offered beside them.
#[derive(Debug)]
pub(crate) struct Upstreams {
    pub providers: Vec<UpstreamProvider>,
    pub local_passwords: bool,
    /// The outbound client for calls that carry upstream credentials: it follows no redirect, so a
    /// bearer token or client secret never goes anywhere but the configured endpoint.
    pub http: SafeHttpClient,
}

impl Upstreams {
    /// Check `providers` (unique, valid ids and URLs).
    pub fn new(
        providers: Vec<UpstreamProvider>,
        local_passwords: bool,
        http: SafeHttpClient,
    ) -> Result<Upstreams, String> {
        for (i, p) in providers.iter().enumerate() {
            p.check()?;
            if providers[..i].iter().any(|q| q.id() == p.id()) {
                return Err(format!("upstream id {:?} is used twice", p.id()));
            }
        }
        if !local_passwords && providers.is_empty() {
            return Err("local passwords are off and no upstream provider is configured: nobody could sign in".into());
        }
        Ok(Upstreams { providers, local_passwords, http })
    }

    pub fn find(&self, id: &str) -> Option<&UpstreamProvider> {
        self.providers.iter().find(|p| p.id() == id)
    }
}

/// The origins the sign-in page's upstream buttons lead to (for its `form-action`): each OpenID Connect
/// provider's authorization endpoint (its issuer if discovery fails now — the button then ends on an error
/// page here), GitHub's web address.
pub(crate) async fn form_targets(state: &crate::AppState) -> Vec<String> {
    let mut targets = Vec::new();
    for provider in &state.upstream.providers {
        targets.push(match provider {
            UpstreamProvider::Oidc(p) => match oidc::discover(state, p).await {
                Ok(d) => d.authorization_endpoint.to_string(),
                Err(_) => p.issuer.clone(),
            },
            UpstreamProvider::Github(p) => p.web_base.clone(),
        });
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(subject: &str, login: Option<&str>, emails: &[&str], orgs: &[&str]) -> Identity {
        Identity {
            link: format!("test:{subject}"),
            subject: subject.into(),
            login: login.map(Into::into),
            emails: emails.iter().map(|e| e.to_string()).collect(),
            orgs: orgs.iter().map(|o| o.to_string()).collect(),
        }
    }

    #[test]
    fn allow_rules_admit_any_match() {
        let open = AllowRules::default();
        assert!(open.admits(&identity("1", None, &[], &[])));
        let rules = AllowRules {
            users: vec!["Octocat".into(), "42".into()],
            emails: vec!["Boss@Corp.example".into()],
            email_domains: vec!["example.com".into()],
            orgs: vec!["acme".into()],
        };
        assert!(rules.admits(&identity("7", Some("octocat"), &[], &[])), "login, case-insensitive");
        assert!(rules.admits(&identity("42", None, &[], &[])), "subject");
        assert!(rules.admits(&identity("8", None, &["boss@corp.example"], &[])), "e-mail");
        assert!(rules.admits(&identity("9", None, &["a@EXAMPLE.com"], &[])), "domain");
        assert!(rules.admits(&identity("10", None, &[], &["ACME"])), "org");
        assert!(!rules.admits(&identity("11", Some("mallory"), &["m@sub.example.com", "m@example.com.evil"], &["x"])));
        assert!(!rules.admits(&identity("octocat", None, &[], &[])), "a subject is not a login");
    }

    #[test]
    fn configuration_is_checked_and_deserialized() {
        let ok = |v: serde_json::Value| serde_json::from_value::<UpstreamProvider>(v).unwrap().check();
        let github = serde_json::json!({"kind": "github", "client_id": "c", "client_secret": "s",
            "allow": {"orgs": ["acme"]}});
        assert_eq!(ok(github), Ok(()));
        let unknown = serde_json::json!({"kind": "github", "client_id": "c", "client_secret": "s", "colour": 1});
        assert!(serde_json::from_value::<UpstreamProvider>(unknown).is_err(), "unknown keys are errors");
        let bad_id = serde_json::json!({"kind": "oidc", "id": "Callback", "issuer": "https://a.example",
            "client_id": "c", "client_secret": "s"});
        assert!(ok(bad_id).is_err());
        let orgs = serde_json::json!({"kind": "oidc", "id": "a", "issuer": "https://a.example",
            "client_id": "c", "client_secret": "s", "allow": {"orgs": ["x"]}});
        assert!(ok(orgs).unwrap_err().contains("GitHub only"));
        let p = OidcUpstream::new("a", "https://a.example", "c", "very secret");
        assert!(!format!("{p:?}").contains("very secret"), "secrets are redacted");
    }
}
