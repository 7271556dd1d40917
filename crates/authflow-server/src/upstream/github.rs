//! GitHub through an OAuth app: the authorization request, the code exchange, and the user API
//! (`GET /user`, `GET /user/emails`, `GET /user/orgs`). The access token is used for these calls only and
//! then dropped.

use authflow_http::{FetchError, Fetched};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::routes::UpstreamError;
use super::state::Pending;
use super::{url_tag, GithubUpstream, Identity};
use crate::AppState;

impl GithubUpstream {
    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("GitHub")
    }

    fn url(&self, base: &str, path: &str) -> Result<Url, UpstreamError> {
        Url::parse(&format!("{}{path}", base.trim_end_matches('/')))
            .map_err(|_| UpstreamError::unavailable(format!("{}'s address is not a URL.", self.name())))
    }

    /// Where the browser goes to sign in.
    pub(crate) fn authorization_endpoint(&self) -> Result<Url, UpstreamError> {
        self.url(&self.web_base, "/login/oauth/authorize")
    }

    /// The scopes to ask for: the user and their e-mail addresses, and organisations when a rule needs them.
    pub(crate) fn scope(&self) -> &'static str {
        if self.allow.orgs.is_empty() {
            "read:user user:email"
        } else {
            "read:user user:email read:org"
        }
    }

    /// The link key's prefix: `github` on github.com, with a tag of the API for any other instance.
    fn link_prefix(&self) -> String {
        if self.api_base.trim_end_matches('/') == "https://api.github.com" {
            "github".to_owned()
        } else {
            format!("github:{}", url_tag(self.api_base.trim_end_matches('/')))
        }
    }
}

#[derive(Deserialize)]
struct User {
    id: u64,
    login: String,
}

#[derive(Deserialize)]
struct Email {
    email: String,
    verified: bool,
}

#[derive(Deserialize)]
struct Org {
    login: String,
}

/// Exchange the code, then read who the user is.
pub(crate) async fn finish(
    state: &AppState,
    p: &GithubUpstream,
    pending: &Pending,
    code: &str,
    redirect_uri: &str,
) -> Result<Identity, UpstreamError> {
    let unreachable = |e: FetchError| UpstreamError::unavailable(format!("{} could not be reached: {e}.", p.name()));
    let form = [
        ("client_id", p.client_id.as_str()),
        ("client_secret", p.client_secret.expose()),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", pending.verifier.as_str()),
    ];
    let url = p.url(&p.web_base, "/login/oauth/access_token")?;
    let answer = state.upstream.http.post_form(&url, &form, HeaderMap::new()).await.map_err(unreachable)?;
    let body: Value = answer.json().unwrap_or(Value::Null);
    // GitHub reports a bad code as 200 with an `error` member.
    let token = match body.get("access_token").and_then(Value::as_str) {
        Some(token) if answer.status.is_success() => token.to_owned(),
        _ => {
            let code = body.get("error").and_then(Value::as_str).unwrap_or("no error code");
            return Err(UpstreamError::bad_gateway(format!(
                "{} refused to complete the sign-in (HTTP {}, {code}).",
                p.name(),
                answer.status.as_u16()
            )));
        }
    };

    let user: User = api(state, p, &token, "/user").await?;
    let emails: Vec<Email> = api(state, p, &token, "/user/emails?per_page=100").await?;
    let orgs: Vec<Org> =
        if p.allow.orgs.is_empty() { Vec::new() } else { api(state, p, &token, "/user/orgs?per_page=100").await? };
    Ok(Identity {
        link: format!("{}:{}", p.link_prefix(), user.id),
        subject: user.id.to_string(),
        login: Some(user.login),
        emails: emails.into_iter().filter(|e| e.verified).map(|e| e.email).collect(),
        orgs: orgs.into_iter().map(|o| o.login).collect(),
    })
}

/// `GET {api_base}{path}` with the user's token, parsed as JSON.
async fn api<T: serde::de::DeserializeOwned>(
    state: &AppState,
    p: &GithubUpstream,
    token: &str,
    path: &str,
) -> Result<T, UpstreamError> {
    let mut headers = HeaderMap::new();
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/vnd.github+json"));
    headers.insert("x-github-api-version", HeaderValue::from_static("2022-11-28"));
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| UpstreamError::bad_gateway(format!("{} sent an unusable access token.", p.name())))?;
    headers.insert(header::AUTHORIZATION, bearer);
    let url = p.url(&p.api_base, path)?;
    let answer: Fetched = state
        .upstream
        .http
        .send(Method::GET, &url, headers, None)
        .await
        .map_err(|e| UpstreamError::unavailable(format!("{} could not be reached: {e}.", p.name())))?;
    if !answer.status.is_success() {
        let path = path.split('?').next().unwrap_or(path);
        return Err(UpstreamError::bad_gateway(format!(
            "{} did not describe the user ({path}: HTTP {}).",
            p.name(),
            answer.status.as_u16()
        )));
    }
    answer.json().map_err(|_| UpstreamError::bad_gateway(format!("{} sent an unexpected answer.", p.name())))
}
