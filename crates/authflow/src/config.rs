//! Configuration: defaults < TOML file < `AUTHFLOW_*` environment variables < command-line flags.
//!
//! Every top-level key of the file can be set from the environment: `AUTHFLOW_` + the key in upper case
//! (`issuer = "…"` is `AUTHFLOW_ISSUER`). The `[gateway]` and `[demo]` sections hold the settings of
//! `authflow gateway` and `authflow demo`, one key per flag; their variables are the flags' own,
//! `AUTHFLOW_GATEWAY_` / `AUTHFLOW_DEMO_` + the key (`[gateway] upstream` is `AUTHFLOW_GATEWAY_UPSTREAM`,
//! as for `--upstream`). `[friction]` (file only) configures friction control for the demo's and the
//! gateway's MCP tools. Values are read as TOML when they parse as such (numbers, booleans, arrays) and as
//! strings otherwise. `DATABASE_URL` and `REDIS_URL` are honoured when the authflow-specific
//! variables are not set.

use std::path::{Path, PathBuf};

use authflow_core::friction::FrictionConfig;
use serde::{Deserialize, Serialize};

/// Environment variables that configure the CLI itself rather than a config key.
const NOT_CONFIG_KEYS: &[&str] = &["AUTHFLOW_CONFIG", "AUTHFLOW_LOG", "AUTHFLOW_LOG_FORMAT"];

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file or the environment holds an invalid value.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// The issuer identifier: the public base URL clients reach the server at.
    pub issuer: Option<String>,
    /// Storage: `sqlite://authflow.db`, `postgres://…` or `memory:`.
    pub database: String,
    /// Redis for state shared between replicas (not needed for one process).
    pub redis: Option<String>,
    /// Apply database migrations when serving.
    pub migrate: bool,
    /// Scopes the server knows; advertised in metadata.
    pub scopes: Vec<String>,
    /// How often expired rows are purged, in seconds.
    pub purge_interval_secs: u64,
    /// The resources (MCP server URLs) tokens may be issued for; empty allows any.
    pub resources: Vec<String>,
    /// Refuse token requests that name no resource (RFC 8707).
    pub require_resource: bool,
    /// `opaque` (default: verified by introspection) or `jwt` (RFC 9068, verifiable against the JWKS).
    pub access_token_format: String,
    /// The algorithm of the signing key (JWT access tokens, ID tokens): `ES256` (default) or `EdDSA`.
    /// Changing it rotates the key; the old one stays published until the tokens it signed expire.
    pub signing_algorithm: String,
    /// Access-token lifetime in seconds.
    pub access_token_ttl_secs: u64,
    /// Refresh-token lifetime in seconds.
    pub refresh_token_ttl_secs: u64,
    /// Authorization-code lifetime in seconds.
    pub code_ttl_secs: u64,
    /// Browser origins (besides loopback ones) allowed to call /token, /revoke and /register; `*` for any.
    pub cors_origins: Vec<String>,
    /// When set, dynamic registration requires this initial access token (a closed deployment).
    pub registration_initial_access_token: Option<String>,
    /// Lifetime of dynamically registered clients in seconds (default: unlimited).
    pub dynamic_client_ttl_secs: Option<u64>,
    /// Accept client ID metadata documents (an `https` URL as `client_id`, fetched SSRF-safely).
    pub client_id_metadata_documents: bool,
    /// Device authorization (RFC 8628): lifetime of a device code in seconds.
    pub device_code_ttl_secs: u64,
    /// Device authorization: the initial polling interval in seconds.
    pub device_poll_interval_secs: u64,
    /// How long a client read from storage is reused, in seconds (0: read on every request).
    pub client_cache_ttl_secs: u64,
    /// Reverse proxies whose forwarded headers name the client for the per-address limits, as networks
    /// (`10.0.0.0/8`, `::1`); empty (default): the peer address, forwarded headers ignored.
    pub trusted_proxies: Vec<String>,
    /// The header trusted proxies record the client in: `x-forwarded-for` (default) or `forwarded` (RFC 7239).
    pub trusted_proxy_header: String,
    /// Hosts (`keycloak.corp.internal`) or networks (`10.20.0.0/16`) that outbound calls — upstream identity
    /// providers, client metadata documents, client `jwks_uri`s — may reach although they are private;
    /// empty (default): public addresses only. `https` is required either way.
    pub outbound_allowed_hosts: Vec<String>,
    /// 32 random bytes in base64 that seal signing keys at rest (AES-256-GCM); the same on every replica.
    pub signing_key_encryption_key: Option<String>,
    /// Clients declared in the file (`[[clients]]`), created or updated at start.
    pub clients: Vec<StaticClient>,
    /// Upstream identity providers (`[[upstream]]`, `kind = "oidc"` or `"github"`) offered on the sign-in
    /// page. File only (no environment variables: they carry client secrets and nested rules).
    #[serde(skip_serializing)]
    pub upstream: Vec<authflow_server::upstream::UpstreamProvider>,
    /// Offer the username/password form on the sign-in page (false: upstream providers only).
    pub local_passwords: bool,
    /// `authflow gateway` (`[gateway]`).
    pub gateway: GatewayConfig,
    /// `authflow demo` (`[demo]`).
    pub demo: DemoConfig,
    /// Friction control of MCP tool calls in `authflow gateway` and `authflow demo` (`[friction]`; the
    /// demo has a default, the gateway none). Not used by `authflow serve`.
    pub friction: Option<FrictionConfig>,
}

/// The settings of `authflow gateway`, one per flag (see `authflow gateway --help`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// The MCP server to protect.
    pub upstream: Option<String>,
    /// Address to listen on.
    pub listen: String,
    /// The authorization server's issuer identifier.
    pub issuer: Option<String>,
    /// The public MCP URL clients connect to.
    pub resource: Option<String>,
    /// Scope required on every request.
    pub scope: Vec<String>,
    /// More scopes to advertise without requiring them.
    pub scopes_supported: Vec<String>,
    /// Client id for token introspection.
    pub introspection_client_id: Option<String>,
    /// Client secret for token introspection.
    pub introspection_client_secret: Option<String>,
    /// Verify JWT access tokens locally.
    pub jwt: bool,
    /// Allow an upstream on a private network.
    pub allow_private_upstream: bool,
    /// Longest wait for the upstream's response headers, in seconds.
    pub upstream_timeout_secs: u64,
    /// Redis shared by the gateway's replicas (introspection verdicts, friction states).
    pub redis: Option<String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            upstream: None,
            listen: "127.0.0.1:9000".into(),
            issuer: None,
            resource: None,
            scope: Vec::new(),
            scopes_supported: Vec::new(),
            introspection_client_id: None,
            introspection_client_secret: None,
            jwt: false,
            allow_private_upstream: false,
            upstream_timeout_secs: 60,
            redis: None,
        }
    }
}

/// The settings of `authflow demo`, one per flag (see `authflow demo --help`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    /// Where the authorization server listens.
    pub listen_auth: String,
    /// Where the notes MCP server listens.
    pub listen_mcp: String,
    /// Directory for the databases and the demo user's credentials.
    pub data_dir: PathBuf,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            listen_auth: "127.0.0.1:8000".into(),
            listen_mcp: "127.0.0.1:8001".into(),
            data_dir: PathBuf::from("authflow-demo"),
        }
    }
}

/// A client declared in the configuration file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct StaticClient {
    /// The client id.
    pub client_id: String,
    /// The secret of a confidential client (store it in the file only if the file is protected; only its hash
    /// is kept in the database).
    pub client_secret: Option<String>,
    /// Display name.
    pub name: String,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Grant types (default as for `authflow client add`).
    pub grant_types: Vec<String>,
    /// A public client.
    pub public: bool,
    /// `client_secret_basic` (default) or `client_secret_post`.
    pub auth_method: Option<String>,
    /// Allowed scope.
    pub scope: Option<String>,
    /// Allowed resources.
    pub resources: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8000".into(),
            issuer: None,
            database: "sqlite://authflow.db".into(),
            redis: None,
            migrate: true,
            scopes: Vec::new(),
            purge_interval_secs: 300,
            resources: Vec::new(),
            require_resource: false,
            access_token_format: "opaque".into(),
            signing_algorithm: "ES256".into(),
            access_token_ttl_secs: 3600,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            code_ttl_secs: 60,
            cors_origins: Vec::new(),
            registration_initial_access_token: None,
            dynamic_client_ttl_secs: None,
            client_id_metadata_documents: true,
            device_code_ttl_secs: 600,
            device_poll_interval_secs: 5,
            client_cache_ttl_secs: 2,
            trusted_proxies: Vec::new(),
            trusted_proxy_header: "x-forwarded-for".into(),
            outbound_allowed_hosts: Vec::new(),
            signing_key_encryption_key: None,
            clients: Vec::new(),
            upstream: Vec::new(),
            local_passwords: true,
            gateway: GatewayConfig::default(),
            demo: DemoConfig::default(),
            friction: None,
        }
    }
}

impl Config {
    /// The signing-key encryption key, if configured (an invalid one is an error, never ignored).
    pub fn key_encryption(
        &self,
    ) -> Result<Option<authflow_server::keys::KeyEncryptionKey>, authflow_server::keys::InvalidKeyEncryptionKey> {
        self.signing_key_encryption_key.as_deref().map(authflow_server::keys::KeyEncryptionKey::from_base64).transpose()
    }

    /// The signing algorithm: `ES256` or `EdDSA` (in any case); anything else, RSA included, is an error.
    pub fn signing_algorithm(&self) -> Result<authflow_core::jose::Algorithm, String> {
        use authflow_core::jose::Algorithm;
        let configured = self.signing_algorithm.trim();
        Algorithm::SIGNING.into_iter().find(|a| a.as_str().eq_ignore_ascii_case(configured)).ok_or_else(|| {
            format!(
                "signing_algorithm must be \"ES256\" or \"EdDSA\", not {:?} (authflow never signs with RSA)",
                self.signing_algorithm
            )
        })
    }

    /// Load from an optional file and an environment (pass `std::env::vars()`).
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
                text.parse::<toml::Table>().map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?
            }
            None => toml::Table::new(),
        };
        let env: Vec<(String, String)> = env.into_iter().collect();
        let warnings = overlay_env(&mut table, &env);
        let mut config: Config =
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        if var("AUTHFLOW_DATABASE").is_none() {
            if let Some(url) = var("DATABASE_URL") {
                config.database = url;
            }
        }
        if var("AUTHFLOW_REDIS").is_none() {
            if let Some(url) = var("REDIS_URL") {
                config.redis = Some(url);
            }
        }
        Ok((config, warnings))
    }
}

/// Sections whose keys are set by `AUTHFLOW_<SECTION>_<KEY>`: the environment names of the commands'
/// flags, kept stable.
const SECTIONS: &[&str] = &["gateway", "demo"];

/// Keys whose default is `None` (and so absent from the serialised defaults): (section, key, holds a
/// string). A string key's variable is never re-read as a TOML number or boolean.
const OPTIONAL_KEYS: &[(&str, &str, bool)] = &[
    ("", "issuer", true),
    ("", "redis", true),
    ("", "registration_initial_access_token", true),
    ("", "dynamic_client_ttl_secs", false),
    ("", "signing_key_encryption_key", true),
    ("gateway", "upstream", true),
    ("gateway", "issuer", true),
    ("gateway", "resource", true),
    ("gateway", "introspection_client_id", true),
    ("gateway", "introspection_client_secret", true),
    ("gateway", "redis", true),
];

/// Apply `AUTHFLOW_*` variables to the table; returns warnings for variables naming no known key.
fn overlay_env(table: &mut toml::Table, env: &[(String, String)]) -> Vec<String> {
    let defaults = toml::Table::try_from(Config::default()).unwrap_or_default();
    let mut warnings = Vec::new();
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix("AUTHFLOW_") else { continue };
        if NOT_CONFIG_KEYS.contains(&name.as_str()) || name.starts_with("AUTHFLOW_TEST_") {
            continue;
        }
        let lower = rest.to_ascii_lowercase();
        let (section, key) = SECTIONS
            .iter()
            .find_map(|s| lower.strip_prefix(s).and_then(|k| k.strip_prefix('_')).map(|k| (*s, k)))
            .unwrap_or(("", lower.as_str()));
        let section_defaults = match section {
            "" => Some(&defaults),
            s => defaults.get(s).and_then(toml::Value::as_table),
        };
        let default = section_defaults.and_then(|t| t.get(key)).filter(|v| !v.is_table());
        let optional = OPTIONAL_KEYS.iter().find(|(s, k, _)| *s == section && *k == key);
        if default.is_none() && optional.is_none() {
            let path = if section.is_empty() { key.to_owned() } else { format!("{section}.{key}") };
            warnings.push(format!("ignoring {name}: no configuration key {path}"));
            continue;
        }
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.clone()));
        // A variable replacing a string key stays a string even if it looks like a number.
        let value = match default {
            Some(toml::Value::String(_)) => toml::Value::String(raw.clone()),
            Some(toml::Value::Array(_)) if !matches!(value, toml::Value::Array(_)) => {
                toml::Value::Array(raw.split_whitespace().map(|s| toml::Value::String(s.into())).collect())
            }
            _ if optional.is_some_and(|(_, _, string)| *string) => toml::Value::String(raw.clone()),
            _ => value,
        };
        let target = if section.is_empty() {
            &mut *table
        } else {
            match table.entry(section).or_insert_with(|| toml::Value::Table(toml::Table::new())) {
                toml::Value::Table(t) => t,
                // `gateway = 1` in the file: leave it for deserialisation to report.
                _ => continue,
            }
        };
        target.insert(key.to_owned(), value);
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_without_file_or_env() {
        let (c, w) = Config::load(None, env(&[])).unwrap();
        assert_eq!(c, Config::default());
        assert!(w.is_empty());
    }

    #[test]
    fn env_overrides_file_and_database_url_is_a_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authflow.toml");
        std::fs::write(&path, "listen = \"0.0.0.0:9000\"\nscopes = [\"a\"]\nmigrate = false\n").unwrap();
        let (c, _) = Config::load(Some(&path), env(&[("DATABASE_URL", "postgres://x/y")])).unwrap();
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!(c.scopes, vec!["a"]);
        assert!(!c.migrate);
        assert_eq!(c.database, "postgres://x/y");

        let (c, _) = Config::load(
            Some(&path),
            env(&[
                ("AUTHFLOW_LISTEN", "127.0.0.1:1"),
                ("AUTHFLOW_SCOPES", "notes:read notes:write"),
                ("AUTHFLOW_MIGRATE", "true"),
                ("AUTHFLOW_DATABASE", "memory:"),
                ("DATABASE_URL", "postgres://ignored"),
                ("AUTHFLOW_ISSUER", "https://auth.example"),
                ("AUTHFLOW_PURGE_INTERVAL_SECS", "60"),
                ("AUTHFLOW_DYNAMIC_CLIENT_TTL_SECS", "86400"),
                ("AUTHFLOW_REGISTRATION_INITIAL_ACCESS_TOKEN", "12345"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:1");
        assert_eq!(c.scopes, vec!["notes:read", "notes:write"]);
        assert!(c.migrate);
        assert_eq!(c.database, "memory:");
        assert_eq!(c.issuer.as_deref(), Some("https://auth.example"));
        assert_eq!(c.purge_interval_secs, 60);
        assert_eq!(c.dynamic_client_ttl_secs, Some(86400));
        assert_eq!(
            c.registration_initial_access_token.as_deref(),
            Some("12345"),
            "a numeric-looking secret stays a string"
        );
    }

    #[test]
    fn gateway_and_demo_keys_come_from_their_section_or_their_flags_variables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(
            &path,
            r#"
[gateway]
upstream = "http://127.0.0.1:3000/mcp"
issuer = "http://127.0.0.1:8000"
scope = ["notes:read"]

[friction]
mode = "both"
max_delay_ms = 2000
[friction.tools]
delete_note = 0.05
[[friction.groups]]
name = "mutations"
tools = ["create_note", "update_note", "delete_note"]
target = 0.2
"#,
        )
        .unwrap();
        let (c, w) = Config::load(
            Some(&path),
            env(&[
                ("AUTHFLOW_GATEWAY_LISTEN", "127.0.0.1:9100"),
                ("AUTHFLOW_GATEWAY_SCOPES_SUPPORTED", "notes:read notes:write"),
                ("AUTHFLOW_GATEWAY_JWT", "true"),
                ("AUTHFLOW_GATEWAY_INTROSPECTION_CLIENT_SECRET", "123"),
                ("AUTHFLOW_GATEWAY_UPSTREAM_TIMEOUT_SECS", "5"),
                ("AUTHFLOW_DEMO_DATA_DIR", "/tmp/demo"),
                ("AUTHFLOW_DEMO_LISTEN_MCP", "127.0.0.1:0"),
            ]),
        )
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.gateway.upstream.as_deref(), Some("http://127.0.0.1:3000/mcp"));
        assert_eq!(c.gateway.listen, "127.0.0.1:9100");
        assert_eq!(c.gateway.scope, ["notes:read"]);
        assert_eq!(c.gateway.scopes_supported, ["notes:read", "notes:write"]);
        assert!(c.gateway.jwt);
        assert_eq!(c.gateway.introspection_client_secret.as_deref(), Some("123"));
        assert_eq!(c.gateway.upstream_timeout_secs, 5);
        assert_eq!(c.demo.data_dir, PathBuf::from("/tmp/demo"));
        assert_eq!(c.demo.listen_mcp, "127.0.0.1:0");
        assert_eq!(c.demo.listen_auth, "127.0.0.1:8000");
        let friction = c.friction.unwrap();
        assert_eq!(friction.tools["delete_note"], 0.05);
        assert_eq!(friction.groups[0].tools.len(), 3);
        assert_eq!(c.listen, "127.0.0.1:8000", "the server's own keys are untouched");

        let (_, w) = Config::load(None, env(&[("AUTHFLOW_GATEWAY_UPSTRAEM", "x"), ("AUTHFLOW_DEMO", "x")])).unwrap();
        assert_eq!(w.len(), 2, "{w:?}");
        std::fs::write(&path, "[friction]\nmod = \"both\"\n").unwrap();
        assert!(
            matches!(Config::load(Some(&path), env(&[])), Err(ConfigError::Invalid(_))),
            "friction keys are checked"
        );
        std::fs::write(&path, "[gateway]\nupstreams = \"x\"\n").unwrap();
        assert!(matches!(Config::load(Some(&path), env(&[])), Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn upstream_providers_come_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authflow.toml");
        std::fs::write(
            &path,
            r#"
local_passwords = false

[[upstream]]
kind = "github"
client_id = "Iv1.abc"
client_secret = "s3cret"
[upstream.allow]
orgs = ["acme"]

[[upstream]]
kind = "oidc"
id = "corp"
issuer = "https://login.example.com"
client_id = "authflow"
client_secret = "other"
"#,
        )
        .unwrap();
        let (c, w) = Config::load(Some(&path), env(&[])).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert!(!c.local_passwords);
        assert_eq!(c.upstream.len(), 2);
        let shown = format!("{:?}", c.upstream);
        assert!(!shown.contains("s3cret") && !shown.contains("other"), "secrets stay out of Debug: {shown}");

        std::fs::write(&path, "[[upstream]]\nkind = \"github\"\nclient_id = \"x\"\nclient_secret = \"y\"\ntypo = 1\n")
            .unwrap();
        assert!(Config::load(Some(&path), env(&[])).is_err(), "unknown keys in a provider are an error");
    }

    #[test]
    fn trusted_proxies_come_from_the_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authflow.toml");
        std::fs::write(
            &path,
            "trusted_proxies = [\"10.0.0.0/8\", \"::1/128\"]\ntrusted_proxy_header = \"forwarded\"\n",
        )
        .unwrap();
        let (c, w) = Config::load(Some(&path), env(&[])).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.trusted_proxies, ["10.0.0.0/8", "::1/128"]);
        assert_eq!(c.trusted_proxy_header, "forwarded");
        let (c, w) = Config::load(
            Some(&path),
            env(&[
                ("AUTHFLOW_TRUSTED_PROXIES", "172.16.0.0/12 fd00::/8"),
                ("AUTHFLOW_TRUSTED_PROXY_HEADER", "x-forwarded-for"),
            ]),
        )
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.trusted_proxies, ["172.16.0.0/12", "fd00::/8"]);
        assert_eq!(c.trusted_proxy_header, "x-forwarded-for");
        let (c, _) = Config::load(None, env(&[("AUTHFLOW_TRUSTED_PROXIES", "[\"10.0.0.0/8\"]")])).unwrap();
        assert_eq!(c.trusted_proxies, ["10.0.0.0/8"], "a TOML array works too");
    }

    #[test]
    fn signing_algorithm_is_es256_or_eddsa() {
        use authflow_core::jose::Algorithm;
        let (c, _) = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.signing_algorithm(), Ok(Algorithm::ES256), "ES256 by default");
        let (c, w) = Config::load(None, env(&[("AUTHFLOW_SIGNING_ALGORITHM", "EdDSA")])).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.signing_algorithm(), Ok(Algorithm::EdDSA));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authflow.toml");
        std::fs::write(&path, "signing_algorithm = \"eddsa\"\n").unwrap();
        let (c, _) = Config::load(Some(&path), env(&[])).unwrap();
        assert_eq!(c.signing_algorithm(), Ok(Algorithm::EdDSA), "names in any case");
        for bad in ["RS256", "PS256", "HS256", "none", "ES384", ""] {
            let c = Config { signing_algorithm: bad.into(), ..Config::default() };
            let e = c.signing_algorithm().unwrap_err();
            assert!(e.contains("signing_algorithm must be \"ES256\" or \"EdDSA\""), "{bad}: {e}");
        }
    }

    #[test]
    fn unknown_keys_are_reported() {
        let (_, w) = Config::load(None, env(&[("AUTHFLOW_LISTN", "x"), ("AUTHFLOW_LOG", "debug")])).unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "listn = \"x\"\n").unwrap();
        assert!(matches!(Config::load(Some(&path), env(&[])), Err(ConfigError::Invalid(_))));
        std::fs::write(&path, "migrate = \"maybe\"\n").unwrap();
        assert!(matches!(Config::load(Some(&path), env(&[])), Err(ConfigError::Invalid(_))));
        assert!(matches!(
            Config::load(Some(&dir.path().join("missing.toml")), env(&[])),
            Err(ConfigError::Read { .. })
        ));
        assert!(matches!(Config::load(None, env(&[("AUTHFLOW_MIGRATE", "perhaps")])), Err(ConfigError::Invalid(_))));
    }
}
