//! Configuration: defaults < TOML file < `AUTHFLOW_*` environment variables < command-line flags.
//!
//! Every key of the file can be set from the environment: `AUTHFLOW_` + the key path in upper case, with
//! `__` between a table and its key. `issuer = "…"` is `AUTHFLOW_ISSUER`; `[tokens] access_ttl = "1h"` is
//! `AUTHFLOW_TOKENS__ACCESS_TTL`. Values are read as TOML when they parse as such (numbers, booleans,
//! arrays) and as strings otherwise. `DATABASE_URL` and `REDIS_URL` are honoured when the authflow-specific
//! variables are not set.

use std::path::Path;

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
    /// Clients declared in the file (`[[clients]]`), created or updated at start.
    pub clients: Vec<StaticClient>,
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
            access_token_ttl_secs: 3600,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            code_ttl_secs: 60,
            cors_origins: Vec::new(),
            registration_initial_access_token: None,
            dynamic_client_ttl_secs: None,
            clients: Vec::new(),
        }
    }
}

impl Config {
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

/// Apply `AUTHFLOW_*` variables to the table; returns warnings for variables naming no known key.
fn overlay_env(table: &mut toml::Table, env: &[(String, String)]) -> Vec<String> {
    let defaults = toml::Table::try_from(Config::default()).unwrap_or_default();
    let mut warnings = Vec::new();
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix("AUTHFLOW_") else { continue };
        if NOT_CONFIG_KEYS.contains(&name.as_str()) || name.starts_with("AUTHFLOW_TEST_") {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        // Optional keys are absent from the serialised defaults, so top-level names are checked against the
        // struct's field list instead.
        let known = path.len() == 1 && (defaults.contains_key(&path[0]) || OPTIONAL_KEYS.contains(&path[0].as_str()));
        if !known {
            warnings.push(format!("ignoring {name}: no configuration key {}", path.join(".")));
            continue;
        }
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.clone()));
        // A variable replacing a string key stays a string even if it looks like a number.
        let value = match defaults.get(&path[0]) {
            Some(toml::Value::String(_)) => toml::Value::String(raw.clone()),
            Some(toml::Value::Array(_)) if !matches!(value, toml::Value::Array(_)) => {
                toml::Value::Array(raw.split_whitespace().map(|s| toml::Value::String(s.into())).collect())
            }
            _ if OPTIONAL_STRING_KEYS.contains(&path[0].as_str()) => toml::Value::String(raw.clone()),
            _ => value,
        };
        table.insert(path[0].clone(), value);
    }
    warnings
}

/// Keys whose default is `None` (and so absent from the serialised defaults).
const OPTIONAL_KEYS: &[&str] = &["issuer", "redis", "registration_initial_access_token", "dynamic_client_ttl_secs"];

/// Optional keys holding strings: their variables are never re-read as TOML numbers or booleans.
const OPTIONAL_STRING_KEYS: &[&str] = &["issuer", "redis", "registration_initial_access_token"];

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
