//! The load generator: N keep-alive HTTP/1.1 connections, each a closed loop (send, read the whole answer,
//! send the next), on the same Tokio runtime as the servers. A warm-up runs first and is not recorded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Request, StatusCode};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::histogram::Histogram;
use crate::Error;

/// Makes the next request; `None` when the scenario has run out (e.g. of pre-minted codes).
pub type MakeRequest = Arc<dyn Fn() -> Option<Request<Full<Bytes>>> + Send + Sync>;

/// How to drive one scenario.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Concurrent connections, each with one request in flight.
    pub connections: usize,
    /// Unrecorded load before measuring.
    pub warmup: Duration,
    /// Recorded load.
    pub duration: Duration,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Successful requests per second over the measured window.
    pub rate: f64,
    /// Latencies of the successful requests.
    pub latency: Histogram,
    /// Answers with an unexpected status during the measured window.
    pub errors: u64,
    /// The first unexpected answer, for the report.
    pub first_error: Option<String>,
    /// The scenario ran out of requests before the window ended; `rate` is over the shorter time.
    pub exhausted: bool,
}

struct Worker {
    latency: Histogram,
    errors: u64,
    first_error: Option<String>,
    /// When the scenario ran out of requests, if it did.
    ran_out: Option<Instant>,
}

/// Run `make` against `addr` under `plan`. Every connection expects `200 OK`.
pub async fn run(addr: SocketAddr, plan: Plan, make: MakeRequest) -> Result<Outcome, Error> {
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let until = measure_from + plan.duration;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..plan.connections.max(1) {
        workers.spawn(connection(addr, make.clone(), measure_from, until));
    }
    let mut latency = Histogram::default();
    let (mut errors, mut first_error, mut ran_out) = (0, None, None::<Instant>);
    while let Some(joined) = workers.join_next().await {
        let w = joined.map_err(|e| format!("a load connection panicked: {e}"))??;
        latency.merge(&w.latency);
        errors += w.errors;
        first_error = first_error.or(w.first_error);
        if let Some(at) = w.ran_out {
            ran_out = Some(ran_out.map_or(at, |r: Instant| r.max(at)));
        }
    }
    let end = match ran_out {
        Some(at) if at <= measure_from => {
            return Err("the scenario ran out of requests during the warm-up (raise --codes)".into());
        }
        Some(at) => at.min(until),
        None => until,
    };
    let seconds = end.duration_since(measure_from).as_secs_f64();
    Ok(Outcome { rate: latency.len() as f64 / seconds, latency, errors, first_error, exhausted: ran_out.is_some() })
}

async fn connection(
    addr: SocketAddr,
    make: MakeRequest,
    measure_from: Instant,
    until: Instant,
) -> Result<Worker, Error> {
    let stream = TcpStream::connect(addr).await.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(conn);
    let mut w = Worker { latency: Histogram::default(), errors: 0, first_error: None, ran_out: None };
    loop {
        if Instant::now() >= until {
            break;
        }
        let Some(request) = make() else {
            w.ran_out = Some(Instant::now());
            break;
        };
        sender.ready().await?;
        let sent = Instant::now();
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let done = Instant::now();
        if sent < measure_from || done > until {
            continue;
        }
        if status == StatusCode::OK {
            w.latency.record(done - sent);
        } else {
            w.errors += 1;
            if w.first_error.is_none() {
                let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
                w.first_error = Some(format!("{status}: {text}"));
            }
        }
    }
    drop(sender);
    driver.abort();
    Ok(w)
}
