//! A tiny fake introspection endpoint whose answers a test scripts, counting the calls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use tokio::sync::Notify;

/// What the endpoint answers.
#[derive(Debug, Clone)]
pub enum Answer {
    /// 200 with this JSON.
    Json(Value),
    /// This status with a small JSON body.
    Status(u16),
    /// 200 with this raw body.
    Raw(&'static str),
    /// 200 with this many bytes of JSON-ish padding.
    Huge(usize),
    /// Never answer.
    Hang,
    /// Wait for the gate, then answer 200 with this JSON.
    Gated(Value),
}

#[derive(Debug, Default)]
pub struct Seen {
    pub headers: Vec<HeaderMap>,
    pub bodies: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct FakeIntrospection {
    pub url: String,
    pub calls: Arc<AtomicUsize>,
    pub answer: Arc<Mutex<Answer>>,
    pub seen: Arc<Mutex<Seen>>,
    pub gate: Arc<Notify>,
}

impl FakeIntrospection {
    pub async fn start(answer: Answer) -> FakeIntrospection {
        let state = FakeIntrospection {
            url: String::new(),
            calls: Arc::new(AtomicUsize::new(0)),
            answer: Arc::new(Mutex::new(answer)),
            seen: Arc::new(Mutex::new(Seen::default())),
            gate: Arc::new(Notify::new()),
        };
        let router = Router::new().route("/introspect", post(handle)).with_state(state.clone());
        let base = super::serve(router).await;
        FakeIntrospection { url: format!("{base}/introspect"), ..state }
    }

    pub fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn last_headers(&self) -> HeaderMap {
        self.seen.lock().unwrap().headers.last().cloned().unwrap()
    }

    pub fn last_body(&self) -> String {
        self.seen.lock().unwrap().bodies.last().cloned().unwrap()
    }
}

async fn handle(State(fake): State<FakeIntrospection>, headers: HeaderMap, body: Bytes) -> Response {
    fake.calls.fetch_add(1, Ordering::SeqCst);
    {
        let mut seen = fake.seen.lock().unwrap();
        seen.headers.push(headers);
        seen.bodies.push(String::from_utf8_lossy(&body).into_owned());
    }
    let answer = fake.answer.lock().unwrap().clone();
    match answer {
        Answer::Json(v) => axum::Json(v).into_response(),
        Answer::Status(s) => {
            (StatusCode::from_u16(s).unwrap(), axum::Json(serde_json::json!({"error": "x"}))).into_response()
        }
        Answer::Raw(s) => ([("content-type", "application/json")], s).into_response(),
        Answer::Huge(n) => {
            ([("content-type", "application/json")], format!("{{\"active\":true,\"pad\":\"{}\"}}", "x".repeat(n)))
                .into_response()
        }
        Answer::Hang => std::future::pending().await,
        Answer::Gated(v) => {
            fake.gate.notified().await;
            axum::Json(v).into_response()
        }
    }
}
