//! Reading the MCP request the layer needs (a `tools/call`'s id, tool and justification) and writing its
//! refusals as MCP tool errors.

use std::time::Duration;

use authflow_core::friction::{Decision, Refusal};
use serde_json::{json, Value};

/// Longest justification kept (and logged).
const MAX_JUSTIFICATION_CHARS: usize = 500;

/// What a request body is, as far as friction is concerned.
#[derive(Debug, PartialEq)]
pub(crate) enum Message {
    /// Not a `tools/call` request (another method, a notification, a response, not JSON-RPC at all):
    /// forwarded untouched; the server answers whatever it is.
    Other,
    /// A `tools/call` request.
    ToolCall {
        /// The request id, echoed in a refusal.
        id: Value,
        /// `params.name`.
        tool: String,
        /// `params._meta.justification` or `params.arguments.justification`, if a non-blank string.
        justification: Option<String>,
    },
    /// A JSON-RPC batch holding a `tools/call` request: refused (see the module docs).
    BatchedToolCall,
}

pub(crate) fn inspect(body: &[u8]) -> Message {
    let Ok(value) = serde_json::from_slice::<Value>(body) else { return Message::Other };
    match value {
        Value::Array(batch) if batch.iter().any(|m| is_tool_call(m) && m.get("id").is_some()) => {
            Message::BatchedToolCall
        }
        message if is_tool_call(&message) => {
            // A notification (no id) cannot be answered: the server sees it and ignores or rejects it.
            let Some(id) = message.get("id") else { return Message::Other };
            let params = message.get("params");
            let Some(tool) = params.and_then(|p| p.get("name")).and_then(Value::as_str) else {
                return Message::Other; // the server answers "invalid params"
            };
            let justification = params
                .and_then(|p| {
                    let meta = p.get("_meta").and_then(|m| m.get("justification"));
                    let argument = p.get("arguments").and_then(|a| a.get("justification"));
                    [meta, argument].into_iter().flatten().filter_map(Value::as_str).find(|s| !s.trim().is_empty())
                })
                .map(|s| s.trim().chars().take(MAX_JUSTIFICATION_CHARS).collect());
            Message::ToolCall { id: id.clone(), tool: tool.to_owned(), justification }
        }
        _ => Message::Other,
    }
}

fn is_tool_call(message: &Value) -> bool {
    message.get("method").and_then(Value::as_str) == Some("tools/call")
}

fn percent(x: f64) -> String {
    format!("{:.0} %", x * 100.0)
}

fn secs(d: Option<Duration>) -> Option<u64> {
    d.map(|d| (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1))
}

/// The text an agent reads: what happened, why, and what to do.
pub(crate) fn explain(decision: &Decision) -> String {
    let (tool, share, target) = (&decision.tool, percent(decision.ema), percent(decision.target));
    match decision.refusal {
        Some(Refusal::Blocked { retry_after }) => {
            let when = match secs(retry_after) {
                Some(s) => format!("Retry after {s} seconds, and only if still needed"),
                None => "Call other tools for a while before retrying".to_owned(),
            };
            format!(
                "Friction control blocked this call: `{tool}` makes up {share} of this client's recent calls \
                 (target: {target}). {when}: every call before then counts and extends the block. Other tools \
                 remain available."
            )
        }
        Some(Refusal::JustificationRequired) => format!(
            "Friction control: `{tool}` makes up {share} of this client's recent calls (target: {target}), so \
             each call needs a justification. Call it again with a `justification` string explaining why this \
             call is necessary, in `_meta.justification` or as an argument `justification`; otherwise, slow \
             down or use other tools."
        ),
        Some(Refusal::Budget { retry_after }) => format!(
            "Friction control: this client's call budget is spent. Retry after {} seconds.",
            secs(Some(retry_after)).unwrap_or(1)
        ),
        None => String::new(),
    }
}

/// The MCP tool error result refusing `decision`, as a JSON-RPC response to `id`.
pub(crate) fn refusal(id: &Value, decision: &Decision) -> Value {
    let retry = decision.refusal.as_ref().and_then(|r| secs(r.retry_after()));
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "result": {
            "content": [{ "type": "text", "text": explain(decision) }],
            "isError": true,
            "_meta": { "authflow/friction": {
                "level": decision.level,
                "reason": decision.refusal,
                "retry_after_secs": retry,
            } },
        },
    })
}

/// The JSON-RPC error answering a batch that holds a `tools/call`.
pub(crate) fn batch_refusal() -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {
            "code": -32600,
            "message": "tools/call cannot be batched on this server: send each call as its own request",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_tool_calls() {
        let call = |v: Value| inspect(v.to_string().as_bytes());
        assert_eq!(
            call(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "t"}})),
            Message::ToolCall { id: json!(7), tool: "t".into(), justification: None }
        );
        assert_eq!(
            call(
                json!({"id": "a", "method": "tools/call", "params": {"name": "t", "_meta": {"justification": " why "}}})
            ),
            Message::ToolCall { id: json!("a"), tool: "t".into(), justification: Some("why".into()) }
        );
        let long = "x".repeat(2000);
        let params = json!({"name": "t", "_meta": {"justification": "  "}, "arguments": {"justification": long}});
        let Message::ToolCall { justification: Some(j), .. } =
            call(json!({"id": 1, "method": "tools/call", "params": params}))
        else {
            panic!("justification from the arguments")
        };
        assert_eq!(j.len(), MAX_JUSTIFICATION_CHARS);
        assert_eq!(call(json!({"method": "tools/call", "params": {"name": "t"}})), Message::Other, "notification");
        assert_eq!(call(json!({"id": 1, "method": "tools/call", "params": {"name": 5}})), Message::Other);
        assert_eq!(call(json!({"id": 1, "method": "tools/call"})), Message::Other);
        assert_eq!(call(json!({"id": 1, "method": "tools/list"})), Message::Other);
        assert_eq!(call(json!([{"id": 1, "method": "tools/call", "params": {"name": "t"}}])), Message::BatchedToolCall);
        assert_eq!(call(json!([{"id": 1, "method": "ping"}])), Message::Other);
        assert_eq!(inspect(b"\xff{not json"), Message::Other);
        assert_eq!(inspect(b""), Message::Other);
    }
}
