//! ROPE calls as the apps' tests make them: JSON in, JSON out.

use mafalda_rope::{CallError, Client, Value};

/// Calls `method` on `target` (or the root) with JSON `params`; the answer as JSON.
pub async fn call_json(
    client: &Client,
    target: Option<&str>,
    method: &str,
    params: serde_json::Value,
) -> Result<serde_json::Value, CallError> {
    let answer = client.call(method, target, Value::serialized(&params).expect("params encode")).await?;
    Ok(answer.deserialized().expect("a JSON answer"))
}
