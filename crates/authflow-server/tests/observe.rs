//! Observability over real HTTP: request ids, `/metrics`, and the logs — audit events for security-relevant
//! actions, and no secret anywhere in the log output, at every level.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use common::{Backend, ClientSpec, TestServer};

/// Everything logged by this test binary, at every level and target.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .json()
            .with_writer(move || writer.clone())
            .init();
        captured
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_counted_identified_and_audited_without_secrets() {
    let logs = logs();
    let server = TestServer::start(Backend::Memory).await;
    let (id, secret) = server.add_client(ClientSpec::service()).await;
    let secret = secret.unwrap();

    let reply = server.post_form("/token", &[("grant_type", "client_credentials")], Some((&id, &secret))).await;
    let token = reply.assert_token()["access_token"].as_str().unwrap().to_owned();
    let generated = reply.header("x-request-id").expect("a request id").to_owned();
    assert!(generated.len() >= 16, "{generated}");
    let wrong = server.post_form("/token", &[("grant_type", "client_credentials")], Some((&id, "wrong"))).await;
    wrong.assert_error(401, "invalid_client");

    // A proxy's id is kept; a hostile one is replaced.
    for (sent, kept) in [("lb-7f3a.01", true), ("evil\tid", false)] {
        let Ok(value) = reqwest::header::HeaderValue::from_str(sent) else { continue };
        let r = server.http.get(server.url("/health")).header("x-request-id", value).send().await.unwrap();
        let echoed = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(echoed == sent, kept, "{sent:?} → {echoed:?}");
    }
    let r = server.http.get(server.url("/health")).header("x-request-id", "x".repeat(200)).send().await.unwrap();
    assert_ne!(r.headers()["x-request-id"].to_str().unwrap(), "x".repeat(200));

    for (introspected, active) in [(token.as_str(), true), ("af_at_unknown", false)] {
        let r = server.post_form("/introspect", &[("token", introspected)], Some((&id, &secret))).await;
        assert_eq!(r.body["active"], active);
    }

    let metrics = server.http.get(server.url("/metrics")).send().await.unwrap();
    assert!(metrics.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = metrics.text().await.unwrap();
    for line in [
        "authflow_requests_total{route=\"/token\",status=\"200\"} 1",
        "authflow_requests_total{route=\"/token\",status=\"401\"} 1",
        "authflow_tokens_issued_total{grant_type=\"client_credentials\"} 1",
        "authflow_request_duration_seconds_count{route=\"/token\"} 2",
        "authflow_introspections_total{active=\"true\"} 1",
        "authflow_introspections_total{active=\"false\"} 1",
        "authflow_storage_unavailable_total 0",
    ] {
        assert!(text.lines().any(|l| l == line), "/metrics lacks {line:?}:\n{text}");
    }
    server.stop().await;

    let out = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let audit: Vec<&str> = out.lines().filter(|l| l.contains("\"target\":\"audit\"")).collect();
    assert!(
        audit.iter().any(|l| l.contains("token issued") && l.contains(&id) && l.contains(&generated)),
        "an audit event for the token, naming the client and carrying the request id:\n{out}"
    );
    for secret_value in [secret.as_str(), token.as_str()] {
        assert!(!out.contains(secret_value), "a secret reached the logs:\n{out}");
    }
}
