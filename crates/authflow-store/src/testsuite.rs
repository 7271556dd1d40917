//! The behavioural suite every backend must pass (feature `test-suite`).
//!
//! [`MemoryStore`](crate::MemoryStore) is the reference; the SQLite and PostgreSQL backends run the same
//! cases, and so can yours. Each case is a public `async fn(Arc<dyn Store>)` that panics with a message
//! saying what broke; the ones named `concurrent_*` race many tasks on a multi-threaded runtime to check the
//! operations the traits promise are atomic.
//!
//! [`store_suite!`](crate::store_suite) turns the suite into one `#[test]` per case, each on its own
//! four-worker Tokio runtime with a fresh store from your setup expression (a future yielding a store or a
//! [`Fixture`]):
//!
//! ```
//! // tests/my_backend.rs — here with the memory backend standing in for yours:
//! authflow_store::store_suite!(async { authflow_store::MemoryStore::new() });
//!
//! // With cleanup that runs even when a case fails:
//! authflow_store::store_suite!(async {
//!     let dir = std::env::temp_dir();
//!     authflow_store::testsuite::Fixture::new(authflow_store::MemoryStore::new())
//!         .with_teardown(async move { let _ = dir; })
//! });
//! # fn main() {}
//! ```
//!
//! Cases use fixed times around [`NOW`] rather than the clock, and expect an empty store.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use authflow_core::device::{DeviceGrant, DeviceStatus};
use authflow_core::pkce::CodeChallengeMethod;
use authflow_core::{ClientAuthMethod, GrantType, Scope, TokenHash, UnixTime};
use serde_json::json;
use tokio::sync::Barrier;

use crate::model::*;
use crate::{Store, StoreError, StoreResult};

/// The "current time" of every case: 2023-11-14T22:13:20Z.
pub const NOW: UnixTime = UnixTime::from_millis(1_700_000_000_000);

/// How long one case may run before it is declared stuck.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// Cleanup to run after a case.
pub type Teardown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A fresh store for one case, and what to do after it (drop a schema, delete a directory…), which runs
/// whether the case passes or not.
pub struct Fixture {
    store: Arc<dyn Store>,
    teardown: Option<Teardown>,
}

impl Fixture {
    /// A fixture with nothing to clean up.
    pub fn new(store: impl Store + 'static) -> Self {
        Fixture { store: Arc::new(store), teardown: None }
    }

    /// Run `teardown` after the case, once the case has let go of the store.
    pub fn with_teardown(mut self, teardown: impl Future<Output = ()> + Send + 'static) -> Self {
        self.teardown = Some(Box::pin(teardown));
        self
    }

    /// The store under test.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// The store and the teardown to run when done with it (for harnesses that manage their own runtime).
    pub fn into_parts(self) -> (Arc<dyn Store>, Option<Teardown>) {
        (self.store, self.teardown)
    }
}

impl Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("backend", &self.store.backend())
            .field("teardown", &self.teardown.is_some())
            .finish()
    }
}

impl<S: Store + 'static> From<S> for Fixture {
    fn from(store: S) -> Self {
        Fixture::new(store)
    }
}

impl From<Arc<dyn Store>> for Fixture {
    fn from(store: Arc<dyn Store>) -> Self {
        Fixture { store, teardown: None }
    }
}

/// Run one case: build a four-worker multi-threaded runtime, await `setup`, run `case` on the runtime
/// (bounded by [`CASE_TIMEOUT`]), run the fixture's teardown, then re-raise the case's panic, if any.
/// [`store_suite!`](crate::store_suite) calls this once per case.
pub fn run<S, T, C, F>(setup: S, case: C)
where
    S: Future<Output = T>,
    T: Into<Fixture>,
    C: FnOnce(Arc<dyn Store>) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("cannot build a Tokio runtime for the store suite");
    runtime.block_on(async move {
        let Fixture { store, teardown } = setup.await.into();
        let mut task = tokio::spawn(case(store));
        let outcome = tokio::time::timeout(CASE_TIMEOUT, &mut task).await;
        if outcome.is_err() {
            task.abort();
            let _ = task.await;
        }
        if let Some(teardown) = teardown {
            teardown.await;
        }
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Ok(Err(e)) => panic!("the case's task failed: {e}"),
            Err(_) => panic!("the case did not finish within {CASE_TIMEOUT:?}: a deadlock or a lost wake-up?"),
        }
    });
}

/// One `#[test]` per case of [`testsuite`](crate::testsuite), each with a fresh store from `$setup`: an
/// expression evaluated once per test that yields a future of a [`Store`](crate::Store) or of a
/// [`Fixture`](crate::testsuite::Fixture) (for cleanup). The tests need no Tokio of their own.
///
/// ```
/// authflow_store::store_suite!(async { authflow_store::MemoryStore::new() });
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! store_suite {
    ($setup:expr $(,)?) => {
        $crate::store_suite!(@cases ($setup)
            clients_round_trip
            clients_listed_by_creation_then_id
            delete_client_cascades
            update_client_keeps_what_was_issued
            users_crud
            grant_revocation_kills_its_tokens
            revoking_a_subject_kills_only_their_grants
            code_consumed_once
            concurrent_code_consumption
            access_token_lookup
            concurrent_access_token_lookups
            standalone_access_tokens
            concurrent_access_token_issuances
            refresh_rotation
            rotation_conflict_changes_nothing
            concurrent_refresh_rotation
            refresh_revocation
            device_grants_crud_and_compare_and_set
            concurrent_device_updates
            device_statuses_round_trip
            signing_keys
            sessions_round_trip_and_expiry
            consents_upsert_replaces
            sessions_and_consents_cascade
            remember_once
            concurrent_remember_once
            purge_removes_only_expired
            concurrent_purges
            optional_fields_round_trip
            references_are_enforced
            ping
        );
    };
    (@cases ($setup:expr) $($case:ident)*) => {
        $(
            #[test]
            fn $case() {
                $crate::testsuite::run(async { $setup.await }, $crate::testsuite::$case);
            }
        )*
    };
}

// ---- helpers ---------------------------------------------------------------------------------------------

trait Must<T> {
    /// Unwrap a storage result, failing the case with `what` and the error.
    fn must(self, what: &str) -> T;
}

impl<T> Must<T> for StoreResult<T> {
    #[track_caller]
    fn must(self, what: &str) -> T {
        match self {
            Ok(v) => v,
            Err(e) => panic!("{what}: unexpected storage error: {e} ({e:?})"),
        }
    }
}

#[track_caller]
fn expect_conflict<T: Debug>(result: StoreResult<T>, what: &str) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{what}: expected StoreError::Conflict, got {other:?}"),
    }
}

#[track_caller]
fn expect_corrupt<T: Debug>(result: StoreResult<T>, what: &str) {
    match result {
        Err(StoreError::Corrupt(_)) => {}
        other => panic!("{what}: expected StoreError::Corrupt (a missing referenced record), got {other:?}"),
    }
}

fn later(secs: u64) -> UnixTime {
    NOW + Duration::from_secs(secs)
}

fn earlier(secs: u64) -> UnixTime {
    NOW - Duration::from_secs(secs)
}

fn hash(label: &str) -> TokenHash {
    TokenHash::of(label)
}

fn scope(s: &str) -> Scope {
    Scope::parse(s).expect("a valid scope")
}

/// Run `n` copies of `op` at once (released together by a barrier) and collect their results.
async fn race<T, F, Fut>(store: &Arc<dyn Store>, n: usize, op: F) -> Vec<T>
where
    F: Fn(Arc<dyn Store>, usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let op = op(store.clone(), i);
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                op.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for task in tasks {
        results.push(task.await.expect("a racing task panicked"));
    }
    results
}

/// A client with every optional field set.
fn full_client(id: &str, origin: ClientOrigin, created_at: UnixTime, expires_at: Option<UnixTime>) -> Client {
    let mut extra = serde_json::Map::new();
    extra.insert("client_uri".into(), json!("https://app.example/"));
    extra.insert("contacts".into(), json!(["ops@app.example", "ünïcødé@app.example"]));
    extra.insert("software_statement_claims".into(), json!({"nested": {"n": 42, "ok": true, "none": null}}));
    Client {
        client_id: id.to_owned(),
        secret_hash: Some(hash(&format!("secret of {id}"))),
        registration_token_hash: Some(hash(&format!("registration token of {id}"))),
        metadata: ClientMetadata {
            client_name: Some(format!("App “{id}”")),
            redirect_uris: vec!["https://app.example/cb".into(), "http://127.0.0.1:8123/callback".into()],
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken, GrantType::DeviceCode],
            token_endpoint_auth_method: ClientAuthMethod::ClientSecretBasic,
            scope: Some(scope("notes:read notes:write openid")),
            resources: vec!["https://mcp.example/mcp".into()],
            jwks: Some(json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "f83OJ3D2", "y": "x_FEzRu9"}]})),
            jwks_uri: Some("https://app.example/jwks.json".into()),
            extra,
        },
        origin,
        created_at,
        expires_at,
        disabled: false,
    }
}

/// A client with every optional field absent.
/// A public client with nothing optional set, created at [`NOW`].
pub fn bare_client(id: &str) -> Client {
    Client {
        client_id: id.to_owned(),
        secret_hash: None,
        registration_token_hash: None,
        metadata: ClientMetadata {
            client_name: None,
            redirect_uris: vec![],
            grant_types: vec![GrantType::ClientCredentials],
            token_endpoint_auth_method: ClientAuthMethod::None,
            scope: None,
            resources: vec![],
            jwks: None,
            jwks_uri: None,
            extra: serde_json::Map::new(),
        },
        origin: ClientOrigin::Admin,
        created_at: NOW,
        expires_at: None,
        disabled: false,
    }
}

fn grant(id: &str, client_id: &str, expires_at: UnixTime) -> Grant {
    Grant {
        id: id.to_owned(),
        client_id: client_id.to_owned(),
        subject: Some("user-1".into()),
        created_at: earlier(60),
        expires_at,
        revoked_at: None,
    }
}

fn code(label: &str, grant_id: &str, client_id: &str, expires_at: UnixTime) -> AuthorizationCode {
    AuthorizationCode {
        code_hash: hash(label),
        grant_id: grant_id.to_owned(),
        client_id: client_id.to_owned(),
        subject: "user-1".into(),
        redirect_uri: "http://127.0.0.1:8123/callback?x=1".into(),
        scope: Some(scope("notes:read openid")),
        resources: vec!["https://mcp.example/mcp".into(), "https://other.example/".into()],
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        code_challenge_method: CodeChallengeMethod::S256,
        nonce: Some("n-0S6_WzA2Mj".into()),
        auth_time: earlier(30),
        issued_at: earlier(1),
        expires_at,
    }
}

fn access(label: &str, grant_id: &str, client_id: &str, expires_at: UnixTime) -> AccessToken {
    AccessToken {
        token_hash: hash(label),
        grant_id: Some(grant_id.to_owned()),
        client_id: client_id.to_owned(),
        subject: Some("user-1".into()),
        scope: Some(scope("notes:read")),
        resources: vec!["https://mcp.example/mcp".into()],
        issued_at: earlier(1),
        expires_at,
    }
}

/// A token without a grant, as client_credentials issues: the client acts for itself.
fn standalone(label: &str, client_id: &str, expires_at: UnixTime) -> AccessToken {
    AccessToken { grant_id: None, subject: None, ..access(label, "", client_id, expires_at) }
}

fn refresh(label: &str, grant_id: &str, client_id: &str, expires_at: UnixTime) -> RefreshToken {
    RefreshToken {
        token_hash: hash(label),
        grant_id: grant_id.to_owned(),
        client_id: client_id.to_owned(),
        subject: Some("user-1".into()),
        scope: Some(scope("notes:read notes:write")),
        resources: vec!["https://mcp.example/mcp".into()],
        issued_at: earlier(1),
        expires_at,
        state: RefreshState::Active,
    }
}

fn device(label: &str, user_code: &str, client_id: &str, expires_at: UnixTime) -> DeviceGrant {
    DeviceGrant {
        device_code_hash: hash(label),
        user_code: user_code.to_owned(),
        client_id: client_id.to_owned(),
        scope: Some(scope("notes:read")),
        resources: vec!["https://mcp.example/mcp".into()],
        status: DeviceStatus::Pending,
        interval_secs: 5,
        last_polled_at: None,
        created_at: NOW,
        expires_at,
        revision: 0,
    }
}

fn signing_key(kid: &str, created_at: UnixTime) -> SigningKey {
    SigningKey {
        kid: kid.to_owned(),
        alg: "ES256".into(),
        private_key: vec![0, 1, 2, 0xfe, 0xff, 0, kid.len() as u8],
        public_jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": "WKn-ZIGevcwG", "y": "y77t-RvAHRKT"}),
        created_at,
        not_before: created_at + Duration::from_secs(60),
        retire_at: None,
        expires_at: None,
    }
}

fn user(id: &str) -> User {
    User {
        id: id.to_owned(),
        username: format!("name-of-{id}"),
        password_hash: None,
        created_at: earlier(3600),
        disabled: false,
    }
}

fn session(label: &str, user_id: &str, expires_at: UnixTime) -> LoginSession {
    LoginSession {
        id_hash: hash(label),
        user_id: user_id.to_owned(),
        auth_time: earlier(30),
        created_at: earlier(20),
        expires_at,
    }
}

fn consent(user_id: &str, client_id: &str, expires_at: UnixTime) -> Consent {
    Consent {
        user_id: user_id.to_owned(),
        client_id: client_id.to_owned(),
        scope: Some(scope("notes:read openid")),
        resources: vec!["https://mcp.example/mcp".into(), "https://other.example/".into()],
        granted_at: earlier(10),
        expires_at,
    }
}

/// A client `client_id` with one live grant `grant_id`.
async fn client_with_grant(store: &dyn Store, client_id: &str, grant_id: &str) {
    store.insert_client(&full_client(client_id, ClientOrigin::Admin, NOW, None)).await.must("insert client");
    store.insert_grant(&grant(grant_id, client_id, later(86_400))).await.must("insert grant");
}

async fn refresh_state(store: &dyn Store, label: &str) -> Option<RefreshState> {
    store.find_refresh_token(&hash(label)).await.must("find refresh token").map(|t| t.state)
}

// ---- clients ---------------------------------------------------------------------------------------------

/// Clients round-trip exactly (every optional field set, and none), duplicates conflict, updates replace,
/// deletes delete.
pub async fn clients_round_trip(store: Arc<dyn Store>) {
    let full = full_client("app-full", ClientOrigin::Dynamic, NOW, Some(later(3600)));
    let bare = bare_client("app-bare");
    store.insert_client(&full).await.must("insert full client");
    store.insert_client(&bare).await.must("insert bare client");
    assert_eq!(store.find_client("app-full").await.must("find"), Some(full.clone()), "full client round trip");
    assert_eq!(store.find_client("app-bare").await.must("find"), Some(bare.clone()), "bare client round trip");
    assert_eq!(store.find_client("nobody").await.must("find unknown"), None, "unknown client");
    let url = "https://app.example/oauth/client.json";
    let document = full_client(url, ClientOrigin::MetadataDocument, NOW, None);
    store.insert_client(&document).await.must("insert a metadata-document client");
    assert_eq!(store.find_client(url).await.must("find"), Some(document), "every origin round-trips");

    let mut twin = bare_client("app-full");
    twin.created_at = later(5);
    expect_conflict(store.insert_client(&twin).await, "inserting a client id twice");
    assert_eq!(store.find_client("app-full").await.must("find"), Some(full.clone()), "a conflict must not overwrite");

    let mut updated = full.clone();
    updated.metadata.client_name = Some("Renamed".into());
    updated.metadata.redirect_uris.push("https://app.example/cb2".into());
    updated.secret_hash = Some(hash("rotated secret"));
    updated.registration_token_hash = None;
    updated.origin = ClientOrigin::Admin;
    updated.expires_at = None;
    updated.disabled = true;
    assert!(store.update_client(&updated).await.must("update"), "update of an existing client returns true");
    assert_eq!(store.find_client("app-full").await.must("find"), Some(updated), "update replaces the record");
    assert!(!store.update_client(&bare_client("ghost")).await.must("update unknown"), "update of unknown is false");
    assert_eq!(store.find_client("ghost").await.must("find"), None, "update must not insert");

    assert!(store.delete_client("app-bare").await.must("delete"), "delete of an existing client returns true");
    assert!(!store.delete_client("app-bare").await.must("delete again"), "second delete returns false");
    assert_eq!(store.find_client("app-bare").await.must("find"), None, "deleted client is gone");
}

/// `list_clients` orders by creation time, then by id (byte order).
pub async fn clients_listed_by_creation_then_id(store: Arc<dyn Store>) {
    assert!(store.list_clients().await.must("list empty").is_empty(), "a fresh store has no clients");
    let mut clients = Vec::new();
    for (id, created) in [("c-b", NOW), ("c-a", NOW), ("Z-upper", NOW), ("c-0", earlier(1)), ("a-late", later(1))] {
        let mut c = bare_client(id);
        c.created_at = created;
        store.insert_client(&c).await.must("insert client");
        clients.push(c);
    }
    let ids: Vec<String> = store.list_clients().await.must("list").into_iter().map(|c| c.client_id).collect();
    assert_eq!(ids, ["c-0", "Z-upper", "c-a", "c-b", "a-late"], "clients ordered by (created_at, id)");
}

/// Deleting a client deletes its grants, codes, tokens and device authorizations, and nobody else's.
pub async fn delete_client_cascades(store: Arc<dyn Store>) {
    for who in ["doomed", "kept"] {
        client_with_grant(&*store, who, &format!("grant-{who}")).await;
        let g = format!("grant-{who}");
        store.insert_code(&code(&format!("code-{who}"), &g, who, later(60))).await.must("insert code");
        store.insert_access_token(&access(&format!("at-{who}"), &g, who, later(3600))).await.must("insert access");
        store.insert_refresh_token(&refresh(&format!("rt-{who}"), &g, who, later(86_400))).await.must("insert rt");
        store
            .insert_device_grant(&device(&format!("dc-{who}"), &who.to_uppercase(), who, later(600)))
            .await
            .must("insert device grant");
    }
    assert!(store.delete_client("doomed").await.must("delete client"), "delete returns true");

    assert_eq!(store.find_grant("grant-doomed").await.must("find grant"), None, "the client's grant is gone");
    assert_eq!(
        store.consume_code(&hash("code-doomed"), NOW).await.must("consume"),
        CodeConsumption::NotFound,
        "the client's code is gone"
    );
    assert_eq!(store.find_access_token(&hash("at-doomed"), NOW).await.must("find at"), None, "access token gone");
    assert_eq!(store.find_refresh_token(&hash("rt-doomed")).await.must("find rt"), None, "refresh token gone");
    assert_eq!(store.find_device_grant(&hash("dc-doomed")).await.must("find dc"), None, "device grant gone");
    assert_eq!(store.find_device_grant_by_user_code("DOOMED").await.must("find uc"), None, "user code freed");

    assert!(store.find_grant("grant-kept").await.must("find grant").is_some(), "another client's grant stays");
    assert!(
        matches!(store.consume_code(&hash("code-kept"), NOW).await.must("consume"), CodeConsumption::Consumed(_)),
        "another client's code stays"
    );
    assert!(store.find_access_token(&hash("at-kept"), NOW).await.must("find").is_some(), "other access token stays");
    assert!(store.find_refresh_token(&hash("rt-kept")).await.must("find").is_some(), "other refresh token stays");
    assert!(store.find_device_grant(&hash("dc-kept")).await.must("find").is_some(), "other device grant stays");
}

/// Updating a client must not disturb what was issued to it (an upsert that deletes and re-inserts would
/// cascade).
pub async fn update_client_keeps_what_was_issued(store: Arc<dyn Store>) {
    client_with_grant(&*store, "app", "g").await;
    store.insert_access_token(&access("at", "g", "app", later(3600))).await.must("insert access token");
    let mut c = store.find_client("app").await.must("find").expect("client exists");
    c.disabled = true;
    c.metadata.client_name = None;
    assert!(store.update_client(&c).await.must("update"), "update returns true");
    assert!(store.find_grant("g").await.must("find grant").is_some(), "grant survives a client update");
    assert!(
        store.find_access_token(&hash("at"), NOW).await.must("find").is_some(),
        "access token survives a client update"
    );
}

// ---- users -----------------------------------------------------------------------------------------------

/// Users: round trip, lookups by id and username, conflicts on id and username (also on update), list
/// ordered by username (byte order), delete.
pub async fn users_crud(store: Arc<dyn Store>) {
    let alice = User {
        id: "u-1".into(),
        username: "alice".into(),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        created_at: NOW,
        disabled: false,
    };
    store.insert_user(&alice).await.must("insert alice");
    assert_eq!(store.find_user("u-1").await.must("find"), Some(alice.clone()), "user round trip");
    assert_eq!(store.find_user_by_username("alice").await.must("find"), Some(alice.clone()), "find by username");
    assert_eq!(store.find_user_by_username("Alice").await.must("find"), None, "usernames match exactly");
    assert_eq!(store.find_user("u-404").await.must("find"), None, "unknown user");

    expect_conflict(store.insert_user(&User { username: "alice2".into(), ..alice.clone() }).await, "duplicate id");
    expect_conflict(store.insert_user(&User { id: "u-2".into(), ..alice.clone() }).await, "duplicate username");

    let bob =
        User { id: "u-2".into(), username: "Bob".into(), password_hash: None, created_at: later(1), disabled: true };
    let carol = User { id: "u-3".into(), username: "carol".into(), ..bob.clone() };
    store.insert_user(&bob).await.must("insert bob");
    store.insert_user(&carol).await.must("insert carol");
    assert_eq!(store.find_user("u-2").await.must("find"), Some(bob.clone()), "user without password round trip");

    let names: Vec<String> = store.list_users().await.must("list").into_iter().map(|u| u.username).collect();
    assert_eq!(names, ["Bob", "alice", "carol"], "users ordered by username, byte order");

    expect_conflict(
        store.update_user(&User { username: "alice".into(), ..bob.clone() }).await,
        "renaming a user to a taken username",
    );
    assert_eq!(store.find_user("u-2").await.must("find"), Some(bob.clone()), "a refused update changes nothing");

    let alice2 = User { password_hash: None, disabled: true, username: "alice.renamed".into(), ..alice.clone() };
    assert!(store.update_user(&alice2).await.must("update"), "update existing returns true");
    assert_eq!(store.find_user("u-1").await.must("find"), Some(alice2.clone()), "update replaces the record");
    assert_eq!(store.find_user_by_username("alice").await.must("find"), None, "old username is free");
    assert!(
        !store.update_user(&User { id: "u-404".into(), username: "x".into(), ..alice.clone() }).await.must("update"),
        "update of unknown returns false"
    );

    assert!(store.delete_user("u-1").await.must("delete"), "delete returns true");
    assert!(!store.delete_user("u-1").await.must("delete again"), "second delete returns false");
    assert_eq!(store.find_user_by_username("alice.renamed").await.must("find"), None, "deleted user is gone");
    store.insert_user(&alice).await.must("the username of a deleted user can be reused");
}

// ---- grants and tokens -----------------------------------------------------------------------------------

/// Revoking a grant kills its access tokens and turns its refresh tokens `Revoked`, including tokens
/// issued after the revocation; the first revocation time is kept.
pub async fn grant_revocation_kills_its_tokens(store: Arc<dyn Store>) {
    client_with_grant(&*store, "app", "g").await;
    client_with_grant(&*store, "other", "g-other").await;
    store.insert_access_token(&access("at-1", "g", "app", later(3600))).await.must("insert at");
    store.insert_refresh_token(&refresh("rt-1", "g", "app", later(86_400))).await.must("insert rt");
    store.insert_access_token(&access("at-other", "g-other", "other", later(3600))).await.must("insert at");

    assert!(store.revoke_grant("g", NOW).await.must("revoke grant"), "revoking an existing grant returns true");
    assert_eq!(store.find_grant("g").await.must("find").expect("grant kept").revoked_at, Some(NOW));
    assert!(store.revoke_grant("g", later(5)).await.must("revoke again"), "revocation is idempotent");
    assert_eq!(
        store.find_grant("g").await.must("find").expect("grant kept").revoked_at,
        Some(NOW),
        "the first revocation time is kept"
    );
    assert!(!store.revoke_grant("nope", NOW).await.must("revoke unknown"), "unknown grant returns false");

    assert_eq!(store.find_access_token(&hash("at-1"), NOW).await.must("find"), None, "access token killed");
    assert_eq!(refresh_state(&*store, "rt-1").await, Some(RefreshState::Revoked), "refresh token revoked");

    store.insert_access_token(&access("at-2", "g", "app", later(3600))).await.must("insert at after revocation");
    store.insert_refresh_token(&refresh("rt-2", "g", "app", later(86_400))).await.must("insert rt after");
    assert_eq!(store.find_access_token(&hash("at-2"), NOW).await.must("find"), None, "later access token dead");
    assert_eq!(refresh_state(&*store, "rt-2").await, Some(RefreshState::Revoked), "later refresh token revoked");
    assert!(
        !store.rotate_refresh_token(&hash("rt-1"), &refresh("rt-3", "g", "app", later(86_400)), NOW).await.must("rot"),
        "a token of a revoked grant cannot rotate"
    );
    assert_eq!(store.find_refresh_token(&hash("rt-3")).await.must("find"), None, "no token from a failed rotation");

    assert!(
        store.find_access_token(&hash("at-other"), NOW).await.must("find").is_some(),
        "another grant's tokens are untouched"
    );
}

/// Revoking a subject's grants revokes each live grant that user authorized, with their tokens, keeps earlier
/// revocation times, and leaves other users' and client-only grants alone.
pub async fn revoking_a_subject_kills_only_their_grants(store: Arc<dyn Store>) {
    client_with_grant(&*store, "app", "g-1").await;
    store.insert_grant(&grant("g-2", "app", later(86_400))).await.must("insert grant");
    store
        .insert_grant(&Grant { subject: Some("user-2".into()), ..grant("g-bob", "app", later(86_400)) })
        .await
        .must("bob");
    store.insert_grant(&Grant { subject: None, ..grant("g-cc", "app", later(86_400)) }).await.must("client grant");
    store.revoke_grant("g-2", earlier(10)).await.must("revoke earlier");
    store.insert_access_token(&access("at-1", "g-1", "app", later(3600))).await.must("insert at");
    store.insert_refresh_token(&refresh("rt-1", "g-1", "app", later(86_400))).await.must("insert rt");
    store.insert_access_token(&access("at-bob", "g-bob", "app", later(3600))).await.must("insert at");
    store.insert_access_token(&access("at-cc", "g-cc", "app", later(3600))).await.must("insert at");

    assert_eq!(store.revoke_grants_of_subject("user-1", NOW).await.must("revoke"), 1, "only the live grant counts");
    assert_eq!(store.revoke_grants_of_subject("user-1", later(5)).await.must("again"), 0, "idempotent");
    assert_eq!(store.revoke_grants_of_subject("nobody", NOW).await.must("unknown"), 0);
    assert_eq!(store.find_grant("g-1").await.must("find").expect("kept").revoked_at, Some(NOW));
    assert_eq!(store.find_grant("g-2").await.must("find").expect("kept").revoked_at, Some(earlier(10)));
    assert_eq!(store.find_access_token(&hash("at-1"), NOW).await.must("find"), None, "their access token is dead");
    assert_eq!(refresh_state(&*store, "rt-1").await, Some(RefreshState::Revoked), "their refresh token too");
    assert!(store.find_access_token(&hash("at-bob"), NOW).await.must("find").is_some(), "another user's lives");
    assert!(store.find_access_token(&hash("at-cc"), NOW).await.must("find").is_some(), "client grants live");
}

/// A code is `Consumed` once, `Replayed` after, `NotFound` if unknown; a duplicate code conflicts.
pub async fn code_consumed_once(store: Arc<dyn Store>) {
    client_with_grant(&*store, "app", "g").await;
    let c = code("code-1", "g", "app", later(60));
    store.insert_code(&c).await.must("insert code");
    expect_conflict(store.insert_code(&c).await, "inserting a code twice");
    assert_eq!(store.consume_code(&c.code_hash, NOW).await.must("consume"), CodeConsumption::Consumed(c.clone()));
    assert_eq!(store.consume_code(&c.code_hash, later(1)).await.must("replay"), CodeConsumption::Replayed(c.clone()));
    assert_eq!(store.consume_code(&c.code_hash, later(2)).await.must("replay"), CodeConsumption::Replayed(c));
    assert_eq!(store.consume_code(&hash("unknown"), NOW).await.must("unknown"), CodeConsumption::NotFound);
    // Expiry is the caller's to check: an expired code is still consumed once.
    let old = code("code-old", "g", "app", earlier(10));
    store.insert_code(&old).await.must("insert expired code");
    assert_eq!(store.consume_code(&old.code_hash, NOW).await.must("consume"), CodeConsumption::Consumed(old));
}

/// 100 concurrent redemptions of one code: exactly one `Consumed`, 99 `Replayed`.
pub async fn concurrent_code_consumption(store: Arc<dyn Store>) {
    client_with_grant(&*store, "app", "g").await;
    let c = code("code-race", "g", "app", later(60));
    store.insert_code(&c).await.must("insert code");
    let outcomes =
        race(&store, 100, |s, i| async move { s.consume_code(&hash("code-race"), later(i as u64)).await }).await;
    let (mut consumed, mut replayed) = (0, 0);
    for outcome in outcomes {
        match outcome.must("concurrent consume") {
            CodeConsumption::Consumed(got) => {
                assert_eq!(got, c, "the consumed code is the stored one");
                consumed += 1;
            }
            CodeConsumption::Replayed(got) => {
                assert_eq!(got, c, "the replayed code is the stored one");
                replayed += 1;
            }
            CodeConsumption::NotFound => panic!("a stored code was reported NotFound"),
        }
    }
    assert_eq!((consumed, replayed), (1, 99), "exactly one of 100 concurrent consumptions wins");
}

/// Access tokens are found only while live: not expired (`expires_at > now`), not revoked.
pub async fn access_token_lookup(store: Arc<dyn Store>) {
    client_with_grant(&*store, "app", "g").await;
    let live = access("at-live", "g", "app", later(3600));
    let expired = access("at-expired", "g", "app", earlier(1));
    store.insert_access_token(&live).await.must("insert live");
    store.insert_access_token(&expired).await.must("insert expired");
    expect_conflict(store.insert_access_token(&live).await, "inserting an access token twice");

    assert_eq!(store.find_access_token(&live.token_hash, NOW).await.must("find"), Some(live.clone()), "live token");
    let last_ms = UnixTime::from_millis(live.expires_at.as_millis() - 1);
    assert!(store.find_access_token(&live.token_hash, last_ms).await.must("find").is_some(), "live until expiry");
    assert_eq!(store.find_access_token(&live.token_hash, live.expires_at).await.must("find"), None, "dead at expiry");
    assert_eq!(store.find_access_token(&expired.token_hash, NOW).await.must("find"), None, "expired token");
    assert_eq!(store.find_access_token(&hash("nope"), NOW).await.must("find"), None, "unknown token");

    assert!(store.revoke_access_token(&live.token_hash, NOW).await.must("revoke"), "revoke existing is true");
    assert_eq!(store.find_access_token(&live.token_hash, NOW).await.must("find"), None, "revoked token");
    assert!(store.revoke_access_token(&live.token_hash, later(1)).await.must("revoke again"), "idempotent");
    assert!(!store.revoke_access_token(&hash("nope"), NOW).await.must("revoke unknown"), "unknown is false");
}

/// Many lookups at once (a backend may answer them in one statement): each gets its own answer, by its own
/// clock.
pub async fn concurrent_access_token_lookups(store: Arc<dyn Store>) {
    client_with_grant(&*store, "app", "g").await;
    store.insert_grant(&grant("g-revoked", "app", later(86_400))).await.must("insert grant");
    let live = access("at-live", "g", "app", later(3600));
    let soon = access("at-soon", "g", "app", later(10));
    let of_revoked = access("at-of-revoked", "g-revoked", "app", later(3600));
    for t in [&live, &soon, &of_revoked] {
        store.insert_access_token(t).await.must("insert");
    }
    assert!(store.revoke_grant("g-revoked", NOW).await.must("revoke"));
    let cases = [
        (live.token_hash, NOW, Some(&live)),
        (soon.token_hash, NOW, Some(&soon)),
        // The same token, by a later clock: expired for this caller only.
        (soon.token_hash, later(10), None),
        (of_revoked.token_hash, NOW, None),
        (hash("unknown"), NOW, None),
    ];
    let lookups = (0..100).map(|i| {
        let store = store.clone();
        let (token_hash, now, _) = cases[i % cases.len()];
        tokio::spawn(async move { store.find_access_token(&token_hash, now).await })
    });
    let answers: Vec<_> = lookups.collect();
    for (i, answer) in answers.into_iter().enumerate() {
        let found = answer.await.expect("the lookup task").must("find");
        assert_eq!(found.as_ref(), cases[i % cases.len()].2, "lookup {i} (case {})", i % cases.len());
    }
}

/// Many issuances at once (a backend may write them in one statement), with and without a grant: each lands
/// or fails on its own, and one at fault takes nothing else with it.
pub async fn concurrent_access_token_issuances(store: Arc<dyn Store>) {
    client_with_grant(&*store, "app", "g").await;
    store.insert_access_token(&standalone("at-taken", "app", later(3600))).await.must("insert");
    let token = |i: usize| {
        let label = format!("at-{i}");
        match i {
            // A token hash stored already, a client that does not exist, a grant that does not exist.
            7 => access("at-taken", "g", "app", later(60)),
            19 => standalone(&label, "ghost", later(3600)),
            31 => access(&label, "ghost-grant", "app", later(3600)),
            _ if i % 2 == 0 => access(&label, "g", "app", later(3600)),
            _ => standalone(&label, "app", later(3600)),
        }
    };
    let writes: Vec<_> = (0..48)
        .map(|i| {
            let store = store.clone();
            let t = token(i);
            tokio::spawn(async move { store.insert_access_token(&t).await })
        })
        .collect();
    for (i, write) in writes.into_iter().enumerate() {
        let result = write.await.expect("the write task");
        let t = token(i);
        match i {
            7 => expect_conflict(result, &format!("write {i}")),
            19 | 31 => expect_corrupt(result, &format!("write {i}: what it is issued from does not exist")),
            _ => {
                result.must(&format!("write {i}"));
                assert_eq!(store.find_access_token(&t.token_hash, NOW).await.must("find"), Some(t), "token {i}");
            }
        }
    }
    for refused in ["at-19", "at-31"] {
        assert_eq!(store.find_access_token(&hash(refused), NOW).await.must("find"), None, "{refused}");
    }
    assert_eq!(
        store.find_access_token(&hash("at-taken"), NOW).await.must("find"),
        Some(standalone("at-taken", "app", later(3600))),
        "the first token with that hash is the one kept"
    );
}

/// A token without a grant (client_credentials) lives until it expires or is revoked itself: no grant's
/// revocation reaches it, its client's deletion takes it, and the purge removes it once expired.
pub async fn standalone_access_tokens(store: Arc<dyn Store>) {
    client_with_grant(&*store, "app", "g").await;
    store.insert_client(&bare_client("other")).await.must("insert client");
    let live = standalone("at-live", "app", later(3600));
    let revoked = standalone("at-revoked", "app", later(3600));
    let expired = standalone("at-expired", "app", earlier(1));
    let of_other = standalone("at-other", "other", later(3600));
    for t in [&live, &revoked, &expired, &of_other] {
        store.insert_access_token(t).await.must("insert");
    }
    expect_conflict(store.insert_access_token(&live).await, "inserting a token twice");
    assert_eq!(store.find_access_token(&live.token_hash, NOW).await.must("find"), Some(live.clone()));
    assert_eq!(store.find_access_token(&expired.token_hash, NOW).await.must("find"), None, "expired");
    assert!(store.revoke_access_token(&revoked.token_hash, NOW).await.must("revoke"));
    assert_eq!(store.find_access_token(&revoked.token_hash, NOW).await.must("find"), None, "revoked");

    // The client's grants and its users' are revoked: the tokens of those grants die, the grantless live.
    let of_user = access("at-of-user", "g", "app", later(3600));
    store.insert_access_token(&of_user).await.must("insert");
    assert_eq!(store.revoke_grants_of_subject("user-1", NOW).await.must("revoke subject"), 1);
    assert!(store.revoke_grant("g", NOW).await.must("revoke grant"), "the grant exists (revoked already)");
    assert_eq!(store.find_access_token(&of_user.token_hash, NOW).await.must("find"), None, "the grant's token died");
    assert_eq!(store.find_access_token(&live.token_hash, NOW).await.must("find"), Some(live.clone()));

    let report = store.purge_expired(NOW).await.must("purge");
    assert_eq!(report.access_tokens, 1, "the expired token purged: {report:?}");
    assert!(!store.revoke_access_token(&expired.token_hash, NOW).await.must("revoke"), "gone");
    assert!(store.find_access_token(&live.token_hash, NOW).await.must("find").is_some(), "the live one kept");

    assert!(store.delete_client("app").await.must("delete client"));
    assert_eq!(store.find_access_token(&live.token_hash, NOW).await.must("find"), None, "deleted with its client");
    assert!(!store.revoke_access_token(&live.token_hash, NOW).await.must("revoke"), "not kept revoked either");
    assert_eq!(store.find_access_token(&of_other.token_hash, NOW).await.must("find"), Some(of_other));
}

/// Rotation: `Active` → rotate → old `Rotated`, new `Active`; rotating the old one again fails.
pub async fn refresh_rotation(store: Arc<dyn Store>) {
    client_with_grant(&*store, "app", "g").await;
    let first = refresh("rt-1", "g", "app", later(86_400));
    store.insert_refresh_token(&first).await.must("insert");
    expect_conflict(store.insert_refresh_token(&first).await, "inserting a refresh token twice");
    assert_eq!(store.find_refresh_token(&first.token_hash).await.must("find"), Some(first.clone()), "round trip");

    let second = RefreshToken { issued_at: NOW, ..refresh("rt-2", "g", "app", later(90_000)) };
    assert!(store.rotate_refresh_token(&first.token_hash, &second, NOW).await.must("rotate"), "first rotation wins");
    assert_eq!(
        store.find_refresh_token(&first.token_hash).await.must("find"),
        Some(RefreshToken { state: RefreshState::Rotated, ..first.clone() }),
        "the old token is Rotated (and otherwise unchanged)"
    );
    assert_eq!(store.find_refresh_token(&second.token_hash).await.must("find"), Some(second.clone()), "new Active");

    let third = refresh("rt-3", "g", "app", later(90_000));
    assert!(
        !store.rotate_refresh_token(&first.token_hash, &third, later(1)).await.must("rotate again"),
        "rotating a rotated token fails"
    );
    assert_eq!(store.find_refresh_token(&third.token_hash).await.must("find"), None, "failed rotation stores nothing");
    assert!(
        !store.rotate_refresh_token(&hash("unknown"), &third, later(1)).await.must("rotate unknown"),
        "rotating an unknown token fails"
    );
    assert!(store.rotate_refresh_token(&second.token_hash, &third, later(2)).await.must("rotate"), "chain goes on");
    assert_eq!(refresh_state(&*store, "rt-3").await, Some(RefreshState::Active));
}

/// A rotation whose new token collides with an existing one fails with a conflict and leaves the old token
/// `Active` (the mark and the insert are one transaction).
pub async fn rotation_conflict_changes_nothing(store: Arc<dyn Store>) {
    client_with_grant(&*store, "app", "g").await;
    store.insert_refresh_token(&refresh("rt-1", "g", "app", later(86_400))).await.must("insert rt-1");
    store.insert_refresh_token(&refresh("rt-2", "g", "app", later(86_400))).await.must("insert rt-2");
    expect_conflict(
        store.rotate_refresh_token(&hash("rt-1"), &refresh("rt-2", "g", "app", later(90_000)), NOW).await,
        "rotating into an existing token hash",
    );
    assert_eq!(refresh_state(&*store, "rt-1").await, Some(RefreshState::Active), "the old token is still Active");
    assert!(
        store.rotate_refresh_token(&hash("rt-1"), &refresh("rt-3", "g", "app", later(90_000)), NOW).await.must("rot"),
        "and can still rotate"
    );
}

/// 50 concurrent rotations of one token: exactly one succeeds, and only its new token exists.
pub async fn concurrent_refresh_rotation(store: Arc<dyn Store>) {
    client_with_grant(&*store, "app", "g").await;
    store.insert_refresh_token(&refresh("rt-race", "g", "app", later(86_400))).await.must("insert");
    let outcomes = race(&store, 50, |s, i| async move {
        let new = refresh(&format!("rt-race-{i}"), "g", "app", later(90_000));
        s.rotate_refresh_token(&hash("rt-race"), &new, NOW).await
    })
    .await;
    let winners: Vec<usize> =
        outcomes.into_iter().enumerate().filter_map(|(i, r)| r.must("concurrent rotate").then_some(i)).collect();
    assert_eq!(winners.len(), 1, "exactly one of 50 concurrent rotations wins, got {winners:?}");
    assert_eq!(refresh_state(&*store, "rt-race").await, Some(RefreshState::Rotated));
    for i in 0..50 {
        let expected = (i == winners[0]).then_some(RefreshState::Active);
        assert_eq!(refresh_state(&*store, &format!("rt-race-{i}")).await, expected, "new token of rotation {i}");
    }
}

/// Revoking one refresh token: `Revoked` (also after rotation), no longer rotatable.
pub async fn refresh_revocation(store: Arc<dyn Store>) {
    client_with_grant(&*store, "app", "g").await;
    store.insert_refresh_token(&refresh("rt-1", "g", "app", later(86_400))).await.must("insert");
    store.insert_refresh_token(&refresh("rt-2", "g", "app", later(86_400))).await.must("insert");
    assert!(store.revoke_refresh_token(&hash("rt-1"), NOW).await.must("revoke"), "revoke existing is true");
    assert_eq!(refresh_state(&*store, "rt-1").await, Some(RefreshState::Revoked));
    assert!(
        !store.rotate_refresh_token(&hash("rt-1"), &refresh("rt-x", "g", "app", later(1)), NOW).await.must("rotate"),
        "a revoked token cannot rotate"
    );
    assert!(store.revoke_refresh_token(&hash("rt-1"), later(1)).await.must("revoke again"), "idempotent");
    assert!(!store.revoke_refresh_token(&hash("nope"), NOW).await.must("revoke unknown"), "unknown is false");
    assert_eq!(store.find_refresh_token(&hash("nope")).await.must("find"), None, "unknown token");

    // Revoked wins over Rotated.
    assert!(store.rotate_refresh_token(&hash("rt-2"), &refresh("rt-3", "g", "app", later(1)), NOW).await.must("rot"));
    assert!(store.revoke_refresh_token(&hash("rt-2"), NOW).await.must("revoke rotated"));
    assert_eq!(refresh_state(&*store, "rt-2").await, Some(RefreshState::Revoked), "revoked beats rotated");
    assert_eq!(refresh_state(&*store, "rt-3").await, Some(RefreshState::Active), "its successor is untouched");
}

// ---- device grants ---------------------------------------------------------------------------------------

/// Device authorizations: insert, user-code conflict, lookups by both keys, compare-and-set updates that
/// bump the revision and refuse stale writes.
pub async fn device_grants_crud_and_compare_and_set(store: Arc<dyn Store>) {
    store.insert_client(&bare_client("tv")).await.must("insert client");
    let d = device("dc-1", "BCDFGHJK", "tv", later(600));
    store.insert_device_grant(&d).await.must("insert");
    expect_conflict(
        store.insert_device_grant(&device("dc-2", "BCDFGHJK", "tv", later(600))).await,
        "a user code that is taken",
    );
    assert_eq!(store.find_device_grant(&hash("dc-2")).await.must("find"), None, "the refused grant is not stored");
    assert_eq!(store.find_device_grant(&d.device_code_hash).await.must("find"), Some(d.clone()), "by device code");
    assert_eq!(store.find_device_grant_by_user_code("BCDFGHJK").await.must("find"), Some(d.clone()), "by user code");
    assert_eq!(store.find_device_grant_by_user_code("ZZZZZZZZ").await.must("find"), None, "unknown user code");
    assert_eq!(store.find_device_grant(&hash("nope")).await.must("find"), None, "unknown device code");

    let polled = DeviceGrant { last_polled_at: Some(later(5)), interval_secs: 10, ..d.clone() };
    assert!(store.update_device_grant(&polled).await.must("update"), "update at the current revision succeeds");
    let stored = store.find_device_grant(&d.device_code_hash).await.must("find").expect("stored");
    assert_eq!(stored, DeviceGrant { revision: 1, ..polled.clone() }, "stored with revision + 1");

    let stale = DeviceGrant { status: DeviceStatus::Denied, ..d.clone() };
    assert!(!store.update_device_grant(&stale).await.must("stale update"), "a stale revision is refused");
    assert_eq!(store.find_device_grant(&d.device_code_hash).await.must("find"), Some(stored.clone()), "unchanged");

    let approved = DeviceGrant { status: DeviceStatus::Approved { subject: "user-7".into() }, ..stored };
    assert!(store.update_device_grant(&approved).await.must("update"), "update at revision 1 succeeds");
    assert_eq!(
        store.find_device_grant_by_user_code("BCDFGHJK").await.must("find"),
        Some(DeviceGrant { revision: 2, ..approved }),
        "approval stored with its subject"
    );
    assert!(
        !store.update_device_grant(&device("dc-unknown", "QQQQQQQQ", "tv", later(1))).await.must("update"),
        "updating an unknown device grant returns false"
    );
}

/// Concurrent compare-and-set on one device authorization: exactly one writer wins and its write is the one
/// stored.
pub async fn concurrent_device_updates(store: Arc<dyn Store>) {
    store.insert_client(&bare_client("tv")).await.must("insert client");
    store.insert_device_grant(&device("dc-race", "RACERACE", "tv", later(600))).await.must("insert");
    let outcomes = race(&store, 20, |s, i| async move {
        let mut d = device("dc-race", "RACERACE", "tv", later(600));
        d.status = DeviceStatus::Approved { subject: format!("user-{i}") };
        s.update_device_grant(&d).await
    })
    .await;
    let winners: Vec<usize> =
        outcomes.into_iter().enumerate().filter_map(|(i, r)| r.must("concurrent update").then_some(i)).collect();
    assert_eq!(winners.len(), 1, "exactly one of 20 concurrent compare-and-sets wins, got {winners:?}");
    let stored = store.find_device_grant(&hash("dc-race")).await.must("find").expect("stored");
    assert_eq!(stored.revision, 1, "one update, one revision");
    assert_eq!(stored.status, DeviceStatus::Approved { subject: format!("user-{}", winners[0]) }, "the winner's write");
}

/// Every `DeviceStatus` round-trips, on insert and on update.
pub async fn device_statuses_round_trip(store: Arc<dyn Store>) {
    store.insert_client(&bare_client("tv")).await.must("insert client");
    let statuses = [
        DeviceStatus::Pending,
        DeviceStatus::Approved { subject: "user-ü-1".into() },
        DeviceStatus::Denied,
        DeviceStatus::Consumed,
    ];
    for (i, status) in statuses.iter().enumerate() {
        let d =
            DeviceGrant { status: status.clone(), ..device(&format!("dc-{i}"), &format!("CODE{i}"), "tv", later(9)) };
        store.insert_device_grant(&d).await.must("insert");
        assert_eq!(store.find_device_grant(&d.device_code_hash).await.must("find"), Some(d), "insert {status:?}");
    }
    let mut d = device("dc-walk", "WALKWALK", "tv", later(600));
    store.insert_device_grant(&d).await.must("insert");
    for status in statuses.iter().rev() {
        d.status = status.clone();
        assert!(store.update_device_grant(&d).await.must("update"), "update to {status:?}");
        d.revision += 1;
        assert_eq!(store.find_device_grant(&d.device_code_hash).await.must("find"), Some(d.clone()), "{status:?}");
    }
}

// ---- signing keys ----------------------------------------------------------------------------------------

/// Signing keys: round trip, newest first (then kid, descending), conflict on kid, retirement.
pub async fn signing_keys(store: Arc<dyn Store>) {
    assert!(store.list_signing_keys().await.must("list").is_empty(), "a fresh store has no keys");
    let keys = [
        signing_key("kid-mid", earlier(86_400)),
        signing_key("kid-a", NOW),
        signing_key("kid-old", earlier(2 * 86_400)),
        signing_key("kid-b", NOW),
    ];
    for k in &keys {
        store.insert_signing_key(k).await.must("insert key");
    }
    expect_conflict(store.insert_signing_key(&signing_key("kid-a", later(1))).await, "a kid that exists");
    let listed = store.list_signing_keys().await.must("list");
    assert_eq!(listed, [keys[3].clone(), keys[1].clone(), keys[0].clone(), keys[2].clone()], "newest first");

    assert!(store.retire_signing_key("kid-old", NOW, later(3600)).await.must("retire"), "retire existing is true");
    assert!(!store.retire_signing_key("kid-none", NOW, later(3600)).await.must("retire"), "unknown is false");
    let retired = store.list_signing_keys().await.must("list").pop().expect("oldest key last");
    assert_eq!(
        retired,
        SigningKey { retire_at: Some(NOW), expires_at: Some(later(3600)), ..keys[2].clone() },
        "retirement times stored"
    );
}

// ---- login sessions and consents -------------------------------------------------------------------------

/// Sessions: round trip, live only before `expires_at`, conflict on the id hash, delete, and a user is
/// required.
pub async fn sessions_round_trip_and_expiry(store: Arc<dyn Store>) {
    store.insert_user(&user("u-1")).await.must("insert user");
    let s = session("sid-1", "u-1", later(3600));
    store.insert_session(&s).await.must("insert session");
    assert_eq!(store.find_session(&hash("sid-1"), NOW).await.must("find"), Some(s.clone()), "round trip");
    assert_eq!(store.find_session(&hash("sid-1"), later(3599)).await.must("find"), Some(s.clone()), "still live");
    assert_eq!(store.find_session(&hash("sid-1"), later(3600)).await.must("find"), None, "expired at expires_at");
    assert_eq!(store.find_session(&hash("sid-none"), NOW).await.must("find"), None, "unknown session");

    let twin = LoginSession { user_id: "u-1".into(), expires_at: later(7200), ..s.clone() };
    expect_conflict(store.insert_session(&twin).await, "a session id hash twice");
    assert_eq!(store.find_session(&hash("sid-1"), NOW).await.must("find"), Some(s), "a conflict must not overwrite");
    expect_corrupt(store.insert_session(&session("sid-ghost", "ghost", later(60))).await, "session of unknown user");
    assert_eq!(store.find_session(&hash("sid-ghost"), NOW).await.must("find"), None);

    assert!(store.delete_session(&hash("sid-1")).await.must("delete"), "delete returns true");
    assert!(!store.delete_session(&hash("sid-1")).await.must("delete again"), "second delete returns false");
    assert_eq!(store.find_session(&hash("sid-1"), NOW).await.must("find"), None, "deleted session is gone");
}

/// Consents: round trip (with and without scope and resources), one per user and client, upsert replaces,
/// live only before `expires_at`, delete, and the user and client are required.
pub async fn consents_upsert_replaces(store: Arc<dyn Store>) {
    store.insert_user(&user("u-1")).await.must("insert user");
    store.insert_user(&user("u-2")).await.must("insert user");
    store.insert_client(&bare_client("app")).await.must("insert client");
    store.insert_client(&bare_client("other")).await.must("insert client");
    assert_eq!(store.find_consent("u-1", "app", NOW).await.must("find"), None, "none yet");

    let first = consent("u-1", "app", later(86_400));
    store.upsert_consent(&first).await.must("insert consent");
    assert_eq!(store.find_consent("u-1", "app", NOW).await.must("find"), Some(first.clone()), "round trip");
    assert_eq!(store.find_consent("u-2", "app", NOW).await.must("find"), None, "another user");
    assert_eq!(store.find_consent("u-1", "other", NOW).await.must("find"), None, "another client");

    let bare = Consent { scope: None, resources: vec![], granted_at: NOW, ..consent("u-1", "other", later(60)) };
    store.upsert_consent(&bare).await.must("insert bare consent");
    assert_eq!(store.find_consent("u-1", "other", NOW).await.must("find"), Some(bare), "absent fields round-trip");

    let replaced = Consent {
        scope: Some(scope("notes:write")),
        resources: vec!["https://mcp.example/other".into()],
        granted_at: NOW,
        ..consent("u-1", "app", later(172_800))
    };
    store.upsert_consent(&replaced).await.must("upsert consent");
    assert_eq!(store.find_consent("u-1", "app", NOW).await.must("find"), Some(replaced.clone()), "upsert replaces");
    assert_eq!(store.find_consent("u-1", "app", later(172_799)).await.must("find"), Some(replaced), "still live");
    assert_eq!(store.find_consent("u-1", "app", later(172_800)).await.must("find"), None, "expired at expires_at");

    expect_corrupt(store.upsert_consent(&consent("ghost", "app", later(60))).await, "consent of unknown user");
    expect_corrupt(store.upsert_consent(&consent("u-2", "ghost", later(60))).await, "consent for unknown client");
    assert_eq!(store.find_consent("u-2", "ghost", NOW).await.must("find"), None);

    assert!(store.delete_consent("u-1", "app").await.must("delete"), "delete returns true");
    assert!(!store.delete_consent("u-1", "app").await.must("delete again"), "second delete returns false");
    assert_eq!(store.find_consent("u-1", "app", NOW).await.must("find"), None, "deleted consent is gone");
    assert!(store.find_consent("u-1", "other", NOW).await.must("find").is_some(), "the other consent stays");
}

/// Deleting a user deletes their sessions and consents; deleting a client deletes the consents given to it;
/// nobody else's go.
pub async fn sessions_and_consents_cascade(store: Arc<dyn Store>) {
    for u in ["u-doomed", "u-kept"] {
        store.insert_user(&user(u)).await.must("insert user");
        store.insert_session(&session(&format!("sid-{u}"), u, later(3600))).await.must("insert session");
    }
    for c in ["c-doomed", "c-kept"] {
        store.insert_client(&bare_client(c)).await.must("insert client");
        for u in ["u-doomed", "u-kept"] {
            store.upsert_consent(&consent(u, c, later(86_400))).await.must("insert consent");
        }
    }

    assert!(store.delete_user("u-doomed").await.must("delete user"), "delete returns true");
    assert_eq!(store.find_session(&hash("sid-u-doomed"), NOW).await.must("find"), None, "the user's session goes");
    for c in ["c-doomed", "c-kept"] {
        assert_eq!(store.find_consent("u-doomed", c, NOW).await.must("find"), None, "the user's consents go");
    }
    assert!(store.find_session(&hash("sid-u-kept"), NOW).await.must("find").is_some(), "another user's session");

    assert!(store.delete_client("c-doomed").await.must("delete client"), "delete returns true");
    assert_eq!(store.find_consent("u-kept", "c-doomed", NOW).await.must("find"), None, "consent to the client goes");
    assert!(store.find_consent("u-kept", "c-kept", NOW).await.must("find").is_some(), "another client's consent");
    assert!(store.find_session(&hash("sid-u-kept"), NOW).await.must("find").is_some(), "sessions stay");
}

// ---- replay guard ----------------------------------------------------------------------------------------

/// `remember_once`: `true` the first time, `false` while remembered, `true` again once expired.
pub async fn remember_once(store: Arc<dyn Store>) {
    assert!(store.remember_once("jti-1", later(60), NOW).await.must("remember"), "first time is true");
    assert!(!store.remember_once("jti-1", later(60), later(1)).await.must("again"), "a replay is false");
    assert!(!store.remember_once("jti-1", later(120), later(59)).await.must("again"), "still remembered");
    assert!(store.remember_once("jti-2", later(60), later(1)).await.must("other key"), "keys are independent");
    assert!(store.remember_once("jti-1", later(120), later(60)).await.must("expired"), "true again at expiry");
    assert!(!store.remember_once("jti-1", later(180), later(61)).await.must("again"), "remembered anew");
    assert!(store.remember_once("jti-1", later(300), later(120)).await.must("expired"), "the new expiry counts");
}

/// 100 concurrent `remember_once` of one key: exactly one `true`.
pub async fn concurrent_remember_once(store: Arc<dyn Store>) {
    let outcomes = race(&store, 100, |s, _| async move { s.remember_once("jti-race", later(60), NOW).await }).await;
    let firsts = outcomes.into_iter().map(|r| r.must("concurrent remember_once")).filter(|first| *first).count();
    assert_eq!(firsts, 1, "exactly one of 100 concurrent remember_once calls is first");
}

// ---- purge -----------------------------------------------------------------------------------------------

/// Expired and live rows of every kind; returns what a purge at [`NOW`] must report.
async fn seed_for_purge(store: &dyn Store) -> PurgeReport {
    // Clients: static without lifetime, dynamic live, dynamic expired, dynamic expiring exactly now.
    store.insert_client(&full_client("static", ClientOrigin::Static, earlier(99), None)).await.must("client");
    store.insert_client(&full_client("dyn-live", ClientOrigin::Dynamic, earlier(9), Some(later(60)))).await.must("c");
    store.insert_client(&full_client("dyn-gone", ClientOrigin::Dynamic, earlier(9), Some(earlier(1)))).await.must("c");
    store.insert_client(&full_client("dyn-edge", ClientOrigin::Dynamic, earlier(9), Some(NOW))).await.must("c");
    // A live grant and token of an expiring client: they go with it (uncounted).
    store.insert_grant(&grant("g-of-gone", "dyn-gone", later(86_400))).await.must("grant");
    store.insert_access_token(&access("at-of-gone", "g-of-gone", "dyn-gone", later(3600))).await.must("at");

    store.insert_grant(&grant("g-live", "static", later(86_400))).await.must("grant");
    store.insert_grant(&grant("g-expired", "static", earlier(1))).await.must("grant");

    store.insert_code(&code("code-live", "g-live", "static", later(60))).await.must("code");
    store.insert_code(&code("code-expired", "g-live", "static", earlier(1))).await.must("code");

    store.insert_access_token(&access("at-live", "g-live", "static", later(3600))).await.must("at");
    store.insert_access_token(&access("at-expired", "g-live", "static", earlier(1))).await.must("at");
    store.insert_access_token(&access("at-expired-2", "g-expired", "static", earlier(10))).await.must("at");

    store.insert_refresh_token(&refresh("rt-live", "g-live", "static", later(86_400))).await.must("rt");
    store.insert_refresh_token(&refresh("rt-expired", "g-expired", "static", earlier(5))).await.must("rt");

    store.insert_device_grant(&device("dc-live", "LIVELIVE", "static", later(600))).await.must("device");
    store.insert_device_grant(&device("dc-expired", "GONEGONE", "static", earlier(1))).await.must("device");

    assert!(store.remember_once("jti-live", later(60), earlier(120)).await.must("remember"));
    assert!(store.remember_once("jti-expired", earlier(1), earlier(120)).await.must("remember"));
    assert!(store.remember_once("jti-edge", NOW, earlier(120)).await.must("remember"));

    store.insert_user(&user("u-1")).await.must("user");
    store.insert_session(&session("sid-live", "u-1", later(60))).await.must("session");
    store.insert_session(&session("sid-expired", "u-1", earlier(1))).await.must("session");
    store.insert_session(&session("sid-edge", "u-1", NOW)).await.must("session");
    store.upsert_consent(&consent("u-1", "static", later(60))).await.must("consent");
    store.upsert_consent(&consent("u-1", "dyn-live", earlier(1))).await.must("consent");
    // A live consent to an expiring client goes with it (uncounted).
    store.upsert_consent(&consent("u-1", "dyn-gone", later(60))).await.must("consent");

    PurgeReport {
        codes: 1,
        access_tokens: 2,
        refresh_tokens: 1,
        grants: 1,
        device_grants: 1,
        replay_entries: 2,
        clients: 2,
        sessions: 2,
        consents: 1,
    }
}

/// After a purge only live rows remain, of every kind.
async fn check_after_purge(store: &dyn Store) {
    for (id, present) in [("static", true), ("dyn-live", true), ("dyn-gone", false), ("dyn-edge", false)] {
        assert_eq!(store.find_client(id).await.must("find client").is_some(), present, "client {id} after purge");
    }
    assert_eq!(store.find_grant("g-of-gone").await.must("find"), None, "grant of a purged client");
    assert_eq!(store.find_access_token(&hash("at-of-gone"), NOW).await.must("find"), None, "token of purged client");
    assert!(store.find_grant("g-live").await.must("find").is_some(), "live grant kept");
    assert_eq!(store.find_grant("g-expired").await.must("find"), None, "expired grant purged");
    assert!(store.find_access_token(&hash("at-live"), NOW).await.must("find").is_some(), "live access token kept");
    assert!(!store.revoke_access_token(&hash("at-expired"), NOW).await.must("revoke"), "expired access token purged");
    assert!(store.find_refresh_token(&hash("rt-live")).await.must("find").is_some(), "live refresh token kept");
    assert_eq!(store.find_refresh_token(&hash("rt-expired")).await.must("find"), None, "expired rt purged");
    assert!(store.find_device_grant(&hash("dc-live")).await.must("find").is_some(), "live device grant kept");
    assert_eq!(store.find_device_grant_by_user_code("GONEGONE").await.must("find"), None, "expired device purged");
    assert_eq!(
        store.consume_code(&hash("code-expired"), NOW).await.must("consume"),
        CodeConsumption::NotFound,
        "expired code purged"
    );
    assert!(
        matches!(store.consume_code(&hash("code-live"), NOW).await.must("consume"), CodeConsumption::Consumed(_)),
        "live code kept"
    );
    assert!(!store.remember_once("jti-live", later(60), NOW).await.must("remember"), "live replay entry kept");
    assert!(store.remember_once("jti-expired", later(60), NOW).await.must("remember"), "expired entry purged");
    assert!(store.find_session(&hash("sid-live"), NOW).await.must("find").is_some(), "live session kept");
    assert!(!store.delete_session(&hash("sid-expired")).await.must("delete"), "expired session purged");
    assert!(!store.delete_session(&hash("sid-edge")).await.must("delete"), "session expiring now purged");
    assert!(store.find_consent("u-1", "static", NOW).await.must("find").is_some(), "live consent kept");
    assert!(!store.delete_consent("u-1", "dyn-live").await.must("delete"), "expired consent purged");
    assert!(!store.delete_consent("u-1", "dyn-gone").await.must("delete"), "consent to a purged client gone");
}

/// `purge_expired` removes exactly the rows that expired (`expires_at <= now`), reports their counts, keeps
/// live rows, and removes what was issued from a purged client.
pub async fn purge_removes_only_expired(store: Arc<dyn Store>) {
    let expected = seed_for_purge(&*store).await;
    assert_eq!(store.purge_expired(NOW).await.must("purge"), expected, "purge report");
    assert_eq!(store.purge_expired(NOW).await.must("purge again"), PurgeReport::default(), "nothing left to purge");
    check_after_purge(&*store).await;
}

/// Two purges at once are safe: between them they remove each expired row once.
pub async fn concurrent_purges(store: Arc<dyn Store>) {
    let expected = seed_for_purge(&*store).await;
    let reports = race(&store, 2, |s, _| async move { s.purge_expired(NOW).await }).await;
    let [a, b] = [reports[0].as_ref(), reports[1].as_ref()].map(|r| *r.expect("a concurrent purge failed"));
    let sum = PurgeReport {
        codes: a.codes + b.codes,
        access_tokens: a.access_tokens + b.access_tokens,
        refresh_tokens: a.refresh_tokens + b.refresh_tokens,
        grants: a.grants + b.grants,
        device_grants: a.device_grants + b.device_grants,
        replay_entries: a.replay_entries + b.replay_entries,
        clients: a.clients + b.clients,
        sessions: a.sessions + b.sessions,
        consents: a.consents + b.consents,
    };
    assert_eq!(sum, expected, "two concurrent purges remove each expired row exactly once ({a:?} + {b:?})");
    check_after_purge(&*store).await;
}

// ---- the rest --------------------------------------------------------------------------------------------

/// Absent optional fields (`None` scope, subject, nonce, times; empty resources) round-trip as absent, and
/// present ones exactly.
pub async fn optional_fields_round_trip(store: Arc<dyn Store>) {
    store.insert_client(&bare_client("app")).await.must("insert client");
    let g = Grant { subject: None, ..grant("g", "app", later(86_400)) };
    let revoked = Grant { revoked_at: Some(earlier(3)), ..grant("g-revoked", "app", later(86_400)) };
    store.insert_grant(&g).await.must("insert grant");
    store.insert_grant(&revoked).await.must("insert revoked grant");
    assert_eq!(store.find_grant("g").await.must("find"), Some(g), "grant without subject");
    assert_eq!(store.find_grant("g-revoked").await.must("find"), Some(revoked), "grant inserted revoked");

    let bare_code = AuthorizationCode {
        scope: None,
        resources: vec![],
        nonce: None,
        code_challenge_method: CodeChallengeMethod::Plain,
        ..code("code-bare", "g", "app", later(60))
    };
    store.insert_code(&bare_code).await.must("insert code");
    assert_eq!(
        store.consume_code(&bare_code.code_hash, NOW).await.must("consume"),
        CodeConsumption::Consumed(bare_code)
    );

    let bare_at = AccessToken { subject: None, scope: None, resources: vec![], ..access("at", "g", "app", later(60)) };
    store.insert_access_token(&bare_at).await.must("insert access token");
    assert_eq!(store.find_access_token(&bare_at.token_hash, NOW).await.must("find"), Some(bare_at));

    let bare_rt =
        RefreshToken { subject: None, scope: None, resources: vec![], ..refresh("rt", "g", "app", later(60)) };
    store.insert_refresh_token(&bare_rt).await.must("insert refresh token");
    assert_eq!(store.find_refresh_token(&bare_rt.token_hash).await.must("find"), Some(bare_rt));

    let many = scope("a b c:d e/f https://scope.example/x");
    let rich_at = AccessToken {
        scope: Some(many.clone()),
        resources: vec!["https://a.example/".into(), "https://b.example/mcp?x=1".into(), "urn:x:ü".into()],
        ..access("at-rich", "g", "app", UnixTime::from_millis(NOW.as_millis() + 1))
    };
    store.insert_access_token(&rich_at).await.must("insert");
    assert_eq!(store.find_access_token(&rich_at.token_hash, NOW).await.must("find"), Some(rich_at), "millisecond");

    let bare_dc = DeviceGrant { scope: None, resources: vec![], ..device("dc", "BAREBARE", "app", later(60)) };
    store.insert_device_grant(&bare_dc).await.must("insert device grant");
    assert_eq!(store.find_device_grant(&bare_dc.device_code_hash).await.must("find"), Some(bare_dc));

    let bare_key = SigningKey { private_key: vec![], public_jwk: json!({}), ..signing_key("k", NOW) };
    store.insert_signing_key(&bare_key).await.must("insert key");
    assert_eq!(store.list_signing_keys().await.must("list"), [bare_key]);
}

/// What is issued needs what it is issued from: a grant, code or device authorization needs its client,
/// a token its client and its grant, if it names one. Violations are [`StoreError::Corrupt`] (a caller bug),
/// and store nothing.
pub async fn references_are_enforced(store: Arc<dyn Store>) {
    expect_corrupt(store.insert_grant(&grant("g", "ghost", later(60))).await, "a grant for an unknown client");
    expect_corrupt(store.insert_code(&code("c", "g", "ghost", later(60))).await, "a code for an unknown client");
    expect_corrupt(
        store.insert_device_grant(&device("d", "GHOSTGHO", "ghost", later(60))).await,
        "a device grant for an unknown client",
    );
    store.insert_client(&bare_client("app")).await.must("insert client");
    expect_corrupt(store.insert_access_token(&access("at", "g", "app", later(60))).await, "a token, unknown grant");
    expect_corrupt(
        store.insert_access_token(&standalone("at-alone", "ghost", later(60))).await,
        "a token without a grant, unknown client",
    );
    expect_corrupt(store.insert_refresh_token(&refresh("rt", "g", "app", later(60))).await, "a token, unknown grant");
    assert_eq!(store.find_grant("g").await.must("find"), None);
    assert_eq!(store.find_device_grant_by_user_code("GHOSTGHO").await.must("find"), None);
    assert_eq!(store.find_refresh_token(&hash("rt")).await.must("find"), None);
}

/// The backend answers and names itself.
pub async fn ping(store: Arc<dyn Store>) {
    store.ping().await.must("ping");
    assert!(!store.backend().is_empty(), "the backend has a name");
}
