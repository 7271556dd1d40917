//! Checking a username and password: rate-limited per username and per client address (when the server
//! knows it, see [`ClientIp`](crate::client_ip::ClientIp)), argon2id off the async runtime, and the same work
//! and answer whether or not the user exists.

use std::net::IpAddr;

use authflow_core::password::{verify_dummy, verify_password, PasswordError};
use authflow_core::{ErrorCode, OAuthError};
use authflow_store::User;

use super::Failure;
use crate::observe::AUDIT;
use crate::pages::{LoginNotice, Problem};
use crate::AppState;

/// The rate-limit key of an address: IPv4 as is, IPv6 by its /64 (one subscriber's usual allocation).
pub(crate) fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// What became of a sign-in attempt.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// The credentials are right and the account is enabled.
    SignedIn(User),
    /// Show the form again, saying why.
    Refused(LoginNotice),
}

/// Check a sign-in attempt.
pub(crate) async fn authenticate(
    state: &AppState,
    ip: Option<IpAddr>,
    username: Option<&str>,
    password: Option<&str>,
) -> Result<Verdict, Failure> {
    if !state.upstream.local_passwords {
        // Only upstream identity providers sign people in here; linked users have no password anyway.
        return Ok(Verdict::Refused(LoginNotice::BadCredentials));
    }
    let (Some(username), Some(password)) = (username, password) else {
        return Ok(Verdict::Refused(LoginNotice::Missing));
    };
    let limits = [
        ip.map(|ip| (format!("login:{}", address_key(ip)), &state.policy.login_attempts_per_ip)),
        Some((format!("login:user:{username}"), &state.policy.login_attempts_per_user)),
    ];
    for (key, limit) in limits.iter().flatten() {
        let decision = state.rate_limit(key, limit).await.map_err(Failure::from)?;
        if let Some(secs) = decision.retry_after_secs() {
            // Neither the username nor the address is logged: either may be personal data.
            let per = if key.starts_with("login:ip:") { "address" } else { "username" };
            tracing::warn!(per, "sign-in rate limited");
            return Ok(Verdict::Refused(LoginNotice::TooManyAttempts(secs)));
        }
    }

    let user = state.store.find_user_by_username(username).await?;
    let stored = user.as_ref().and_then(|u| u.password_hash.clone());
    let password = password.to_owned();
    // argon2id takes tens of milliseconds of CPU: keep it off the async workers.
    let verified = tokio::task::spawn_blocking(move || match stored {
        Some(hash) => verify_password(&password, &hash),
        None => verify_dummy(&password),
    })
    .await
    .map_err(|_| Problem::from(OAuthError::new(ErrorCode::ServerError)))?;

    let verdict = match (verified, user) {
        (Ok(true), Some(user)) if user.disabled => Verdict::Refused(LoginNotice::Disabled),
        (Ok(true), Some(user)) => Verdict::SignedIn(user),
        (Err(PasswordError::InvalidHash), Some(_)) => {
            tracing::warn!("a user's stored password hash is invalid; sign-in refused");
            Verdict::Refused(LoginNotice::BadCredentials)
        }
        _ => Verdict::Refused(LoginNotice::BadCredentials),
    };
    // By user id when there is one; a failed name is not logged (it may be a password typed in the wrong box).
    match &verdict {
        Verdict::SignedIn(user) => tracing::info!(target: AUDIT, user_id = %user.id, "sign-in succeeded"),
        Verdict::Refused(notice) => tracing::info!(target: AUDIT, reason = ?notice, "sign-in failed"),
    }
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_keyed_by_subscriber() {
        assert_eq!(address_key("192.0.2.7".parse().unwrap()), "ip:192.0.2.7");
        assert_eq!(address_key("2001:db8:1:2:3:4:5:6".parse().unwrap()), "ip:2001:db8:1:2::/64");
        assert_eq!(address_key("2001:db8:1:2:ffff::1".parse().unwrap()), "ip:2001:db8:1:2::/64");
    }
}
