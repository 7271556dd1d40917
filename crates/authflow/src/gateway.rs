//! `authflow gateway`: OAuth in front of an existing HTTP MCP server (see the `authflow-gateway` crate).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use authflow_core::friction::FrictionConfig;
use authflow_core::ssrf::{IpNetwork, SsrfPolicy};
use authflow_gateway::Gateway;
use authflow_resource::{
    FrictionController, IntrospectionVerifier, JwtOrIntrospection, JwtVerifier, ProtectedResource, SafeHttpClient,
    SharedMap, TokenVerifier,
};
use authflow_store::redis::RedisShared;
use clap::Args;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::cli::CliResult;
use crate::config::GatewayConfig;

/// How long a shutdown waits for in-flight requests and open streams.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Flags of `authflow gateway`. Each is also a key of the file's `[gateway]` section (flags and their
/// variables win over the file); `[friction]` in the file turns friction control on.
#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// The MCP server to protect, e.g. http://127.0.0.1:3000/mcp (required here or in the file).
    #[arg(long, env = "AUTHFLOW_GATEWAY_UPSTREAM", value_name = "URL")]
    pub upstream: Option<Url>,
    /// Address to listen on [default: 127.0.0.1:9000].
    #[arg(long, env = "AUTHFLOW_GATEWAY_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// The authorization server's issuer identifier (required here or in the file).
    #[arg(long, env = "AUTHFLOW_GATEWAY_ISSUER", value_name = "URL")]
    pub issuer: Option<String>,
    /// The public MCP URL clients connect to, the tokens' audience [default: http://<listen><upstream path>,
    /// on loopback only].
    #[arg(long, env = "AUTHFLOW_GATEWAY_RESOURCE", value_name = "URL")]
    pub resource: Option<String>,
    /// Scope required on every request (repeat, or space-separate, for several). 401 challenges name it
    /// and the --scopes-supported, so MCP clients ask for all of them at once.
    #[arg(long = "scope", env = "AUTHFLOW_GATEWAY_SCOPE", value_name = "SCOPE", value_delimiter = ' ')]
    pub scopes: Vec<String>,
    /// More scopes the upstream's tools may need, advertised without being required: in the metadata
    /// (`scopes_supported`) and in 401 challenges, the scope MCP clients request.
    #[arg(long, env = "AUTHFLOW_GATEWAY_SCOPES_SUPPORTED", value_name = "SCOPE", value_delimiter = ' ')]
    pub scopes_supported: Vec<String>,
    /// Client id for token introspection (RFC 7662) at <issuer>/introspect.
    #[arg(long, env = "AUTHFLOW_GATEWAY_INTROSPECTION_CLIENT_ID", value_name = "ID")]
    pub introspection_client_id: Option<String>,
    /// Client secret for token introspection.
    #[arg(long, env = "AUTHFLOW_GATEWAY_INTROSPECTION_CLIENT_SECRET", value_name = "SECRET", hide_env_values = true)]
    pub introspection_client_secret: Option<String>,
    /// Verify JWT access tokens (RFC 9068) locally against the issuer's JWKS (with introspection
    /// credentials too, opaque tokens are still introspected).
    #[arg(long, env = "AUTHFLOW_GATEWAY_JWT")]
    pub jwt: bool,
    /// Allow an upstream on a private network (10/8, 172.16/12, 192.168/16, fc00::/7), e.g. a container
    /// next to the gateway.
    #[arg(long, env = "AUTHFLOW_GATEWAY_ALLOW_PRIVATE_UPSTREAM")]
    pub allow_private_upstream: bool,
    /// Longest wait for the upstream's response headers, in seconds (streamed bodies are not limited)
    /// [default: 60].
    #[arg(long, env = "AUTHFLOW_GATEWAY_UPSTREAM_TIMEOUT_SECS", value_name = "SECS")]
    pub upstream_timeout_secs: Option<u64>,
    /// Redis shared by the gateway's replicas, e.g. redis://127.0.0.1:6379: introspection verdicts and
    /// friction states are shared, so N replicas act as one [default: each replica on its own].
    #[arg(long, env = "AUTHFLOW_GATEWAY_REDIS", value_name = "URL", hide_env_values = true)]
    pub redis: Option<String>,
}

impl GatewayArgs {
    /// The file's `[gateway]` settings with the flags given applied over them.
    pub fn apply(self, mut config: GatewayConfig) -> GatewayConfig {
        let some = |flag: Option<String>, file: &mut Option<String>| {
            if flag.is_some() {
                *file = flag;
            }
        };
        some(self.upstream.map(String::from), &mut config.upstream);
        some(self.issuer, &mut config.issuer);
        some(self.resource, &mut config.resource);
        some(self.introspection_client_id, &mut config.introspection_client_id);
        some(self.introspection_client_secret, &mut config.introspection_client_secret);
        some(self.redis, &mut config.redis);
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        let scopes = |flag: Vec<String>| flag.into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>();
        let (required, supported) = (scopes(self.scopes), scopes(self.scopes_supported));
        if !required.is_empty() {
            config.scope = required;
        }
        if !supported.is_empty() {
            config.scopes_supported = supported;
        }
        config.jwt |= self.jwt;
        config.allow_private_upstream |= self.allow_private_upstream;
        if let Some(secs) = self.upstream_timeout_secs {
            config.upstream_timeout_secs = secs;
        }
        config
    }
}

fn is_loopback_url(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The verifier the flags ask for.
fn verifier(
    config: &GatewayConfig,
    issuer: &Url,
    resource: &str,
    shared: Option<Arc<dyn SharedMap>>,
) -> Result<Box<dyn TokenVerifier>, BoxError> {
    // Calls to the authorization server go through the SSRF-safe client; plain http only for loopback.
    let policy = if is_loopback_url(issuer) { SsrfPolicy::development() } else { SsrfPolicy::strict() };
    let http = SafeHttpClient::new(policy)?;
    let issuer_id = issuer.as_str().trim_end_matches('/').to_owned();
    let introspection = match (&config.introspection_client_id, &config.introspection_client_secret) {
        (Some(id), Some(secret)) => {
            let mut builder = IntrospectionVerifier::builder(format!("{issuer_id}/introspect").parse()?, resource)
                .client_secret_basic(id, secret)
                .issuer(issuer_id.as_str())
                .http_client(http.clone());
            if let Some(shared) = shared {
                builder = builder.shared_cache(shared);
            }
            Some(builder.build()?)
        }
        _ => None,
    };
    let jwt = if config.jwt {
        Some(JwtVerifier::builder(issuer_id.as_str(), resource).http_client(http).build()?)
    } else {
        None
    };
    Ok(match (jwt, introspection) {
        (Some(jwt), Some(introspection)) => Box::new(JwtOrIntrospection::new(jwt, introspection)),
        (Some(jwt), None) => Box::new(jwt),
        (None, Some(introspection)) => Box::new(introspection),
        (None, None) => {
            return Err("choose how tokens are verified: --introspection-client-id and --introspection-client-secret, \
                        and/or --jwt"
                .into())
        }
    })
}

/// Split space-separated scope lists and drop duplicates, keeping the order.
fn scope_list<'a>(lists: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in lists.into_iter().flat_map(|s| s.split_whitespace()) {
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    scopes
}

/// Run the gateway until SIGINT/SIGTERM, with friction control when `friction` is given.
pub async fn gateway(config: GatewayConfig, friction: Option<FrictionConfig>) -> CliResult {
    let upstream: Url = match &config.upstream {
        Some(upstream) => upstream.parse().map_err(|e| format!("invalid --upstream {upstream:?}: {e}"))?,
        None => return Err("--upstream (or `upstream` in the file's [gateway] section) is required".into()),
    };
    let Some(issuer) = &config.issuer else {
        return Err("--issuer (or `issuer` in the file's [gateway] section) is required".into());
    };
    let issuer: Url = issuer.parse().map_err(|e| format!("invalid --issuer {issuer:?}: {e}"))?;
    if config.introspection_client_id.is_some() != config.introspection_client_secret.is_some() {
        return Err("--introspection-client-id and --introspection-client-secret go together".into());
    }
    let mut friction = friction
        .map(FrictionController::new)
        .transpose()
        .map_err(|e| format!("invalid [friction] configuration: {e}"))?;
    let listener =
        TcpListener::bind(&config.listen).await.map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let local = listener.local_addr()?;
    let resource = match &config.resource {
        Some(resource) => resource.clone(),
        None if local.ip().is_loopback() => format!("http://{local}{}", upstream.path().trim_end_matches('/')),
        None => {
            return Err(
                format!("listening on {local}, which is not loopback: set --resource to the public MCP URL").into()
            )
        }
    };
    let scopes = scope_list(&config.scope);
    let advertised = scope_list(config.scope.iter().chain(&config.scopes_supported));
    let metadata = ProtectedResource::new(&resource)?
        .authorization_server(issuer.as_str().trim_end_matches('/'))
        .scopes_supported(&advertised);
    let shared = match &config.redis {
        Some(url) => {
            // Replicas protect one resource, so it names their keyspace.
            let prefix = format!("authflow-gateway:{resource}:");
            let redis = RedisShared::connect(url, &prefix)
                .await
                .map_err(|e| format!("cannot connect to Redis at {}: {e}", crate::serve::redact_url(url)))?;
            tracing::info!("introspection verdicts and friction states are shared through Redis");
            Some(Arc::new(redis) as Arc<dyn SharedMap>)
        }
        None => None,
    };
    if let Some(shared) = &shared {
        friction = friction.map(|f| f.shared_state(shared.clone()));
    }
    let verifier = verifier(&config, &issuer, &resource, shared)?;

    let mut policy = SsrfPolicy::development();
    if config.allow_private_upstream {
        for (net, prefix) in [("10.0.0.0", 8), ("172.16.0.0", 12), ("192.168.0.0", 16), ("fc00::", 7)] {
            if let Ok(network) = IpNetwork::new(net.parse()?, prefix) {
                policy = policy.allow_network(network);
            }
        }
    }
    let mut builder = Gateway::builder(upstream.clone(), metadata, verifier)
        .ssrf_policy(policy)
        .upstream_timeout(Duration::from_secs(config.upstream_timeout_secs.max(1)));
    if !scopes.is_empty() {
        builder = builder.require_scopes(&scopes);
    }
    // MCP clients request exactly the scope a 401 names: name everything the upstream's tools may need.
    if advertised.len() > scopes.len() {
        builder = builder.challenge_scopes(&advertised);
    }
    if let Some(friction) = friction {
        builder = builder.friction(friction);
    }
    let gateway = builder.build().await?;

    let mut banner = format!(
        "authflow gateway: {resource} -> {upstream}\n  metadata: {}\n  forward auth: http://{local}{}\n",
        gateway.resource().metadata_url(),
        authflow_gateway::VERIFY_PATH
    );
    if gateway.friction().is_some() {
        banner.push_str(&format!("  friction status: http://{local}{}\n", authflow_gateway::FRICTION_PATH));
    }
    let stopped = crate::shutdown::listen()?;
    // A closed stdout is no reason to stop serving.
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(banner.as_bytes()).and_then(|()| stdout.flush());
    drop(stdout);
    tracing::info!(%resource, %upstream, "authflow gateway listening on http://{local}");
    let app = gateway.router().into_make_service_with_connect_info::<SocketAddr>();
    let stop = CancellationToken::new();
    let drained = stop.clone();
    let server = tokio::spawn(async move {
        axum::serve(crate::serve::no_delay(listener), app).with_graceful_shutdown(drained.cancelled_owned()).await
    });
    stopped.await;
    stop.cancel();
    // Proxied SSE streams stay open as long as the client wants: give requests a moment, then leave.
    match tokio::time::timeout(DRAIN_TIMEOUT, server).await {
        Ok(result) => result??,
        Err(_) => tracing::info!("closing the streams still open after {DRAIN_TIMEOUT:?}"),
    }
    tracing::info!("authflow gateway stopped");
    Ok(())
}
