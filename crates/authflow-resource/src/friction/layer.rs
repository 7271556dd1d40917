//! [`FrictionLayer`] and the [`Friction`] service (see the [module docs](super)).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, Method, Request, Response, StatusCode};
use serde_json::Value;
use tower::{Layer, Service};

use super::jsonrpc::{self, Message};
use super::{client_key, FrictionController};
use crate::verifier::VerifiedToken;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Default for [`FrictionLayer::max_body_bytes`].
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Checks MCP `tools/call` requests against a [`FrictionController`]. Place it inside the
/// [`BearerAuthLayer`](crate::BearerAuthLayer); see the [module docs](super).
#[derive(Debug, Clone)]
pub struct FrictionLayer {
    controller: FrictionController,
    max_body_bytes: usize,
}

impl FrictionLayer {
    /// The layer for `controller` (also [`FrictionController::layer`]).
    pub fn new(controller: FrictionController) -> Self {
        FrictionLayer { controller, max_body_bytes: DEFAULT_MAX_BODY_BYTES }
    }

    /// The largest request body read (default 4 MiB); larger ones are refused with 413.
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }
}

impl<S> Layer<S> for FrictionLayer {
    type Service = Friction<S>;
    fn layer(&self, inner: S) -> Friction<S> {
        Friction { inner, controller: self.controller.clone(), max_body_bytes: self.max_body_bytes }
    }
}

/// The service [`FrictionLayer`] wraps around an MCP endpoint.
#[derive(Debug, Clone)]
pub struct Friction<S> {
    inner: S,
    controller: FrictionController,
    max_body_bytes: usize,
}

/// Why a body could not be buffered.
enum ReadError {
    TooLarge,
    Failed,
}

/// The whole body, or an error once it exceeds `limit` bytes.
async fn read_body(mut body: Body, limit: usize) -> Result<Bytes, ReadError> {
    use http_body::Body as _;
    let mut buffer = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let Ok(data) = frame.map_err(|_| ReadError::Failed)?.into_data() else { continue }; // trailers
        if buffer.len().saturating_add(data.len()) > limit {
            return Err(ReadError::TooLarge);
        }
        buffer.extend_from_slice(&data);
    }
    Ok(Bytes::from(buffer))
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn plain(status: StatusCode, message: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(message));
    *response.status_mut() = status;
    response
}

fn declared_length(request: &Request<impl Sized>) -> Option<u64> {
    request.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Friction<S>
where
    S: Service<Request<Body>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: http_body::Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The clone is not ready; the service that was polled ready serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (controller, limit) = (self.controller.clone(), self.max_body_bytes);
        let key = match request.method() {
            &Method::POST => VerifiedToken::of(request.extensions()).and_then(client_key),
            _ => None,
        };
        let too_large = declared_length(&request).is_some_and(|n| n > limit as u64);
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let Some(key) = key else {
                // No verified client (or not a POST): nothing to control.
                return Ok(inner.call(Request::from_parts(parts, Body::new(body))).await?.map(Body::new));
            };
            if too_large {
                return Ok(plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"));
            }
            let bytes = match read_body(Body::new(body), limit).await {
                Ok(bytes) => bytes,
                Err(ReadError::TooLarge) => return Ok(plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")),
                Err(ReadError::Failed) => return Ok(plain(StatusCode::BAD_REQUEST, "could not read the request body")),
            };
            match jsonrpc::inspect(&bytes) {
                Message::Other => {}
                Message::BatchedToolCall => return Ok(json_response(StatusCode::OK, &jsonrpc::batch_refusal())),
                Message::ToolCall { id, tool, justification } => {
                    let decision = controller.check_justified(&key, &tool, justification.as_deref()).await;
                    if !decision.allowed {
                        return Ok(json_response(StatusCode::OK, &jsonrpc::refusal(&id, &decision)));
                    }
                    if !decision.delay.is_zero() {
                        tokio::time::sleep(decision.delay).await;
                    }
                }
            }
            Ok(inner.call(Request::from_parts(parts, Body::from(bytes))).await?.map(Body::new))
        })
    }
}
