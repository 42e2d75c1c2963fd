//! The custom handler's request and response payloads, as the Functions host sends and
//! reads them (Microsoft's docs, `articles/azure-functions/functions-custom-handlers.md`,
//! *Request payload* and *Response payload*).
//!
//! The host POSTs `{"Data": {...}, "Metadata": {...}}` to `/<function name>`: `Data` holds
//! one entry per trigger and input binding of `function.json` — for a timer trigger, the
//! timer object (`Schedule`, `ScheduleStatus`, `IsPastDue`) under the binding's name —
//! and `Metadata` the trigger's metadata (`sys.MethodName`, `sys.UtcNow`, …). The answer
//! is `{"Outputs": {...}, "Logs": [...], "ReturnValue": ...}`: `Outputs` by output binding
//! name (a timer function has none), `Logs` shown in the invocation's log, `ReturnValue`
//! for a `$return` binding.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What the host sends for one invocation.
#[derive(Debug, Deserialize)]
pub struct InvokeRequest {
    /// Trigger and input binding data, by binding name.
    #[serde(rename = "Data", default)]
    pub data: Map<String, Value>,
    /// Trigger metadata.
    #[serde(rename = "Metadata", default)]
    pub metadata: Map<String, Value>,
}

impl InvokeRequest {
    /// Whether a timer binding says this invocation comes later than scheduled (a restart
    /// of the function app, for instance).
    pub fn is_past_due(&self) -> bool {
        self.data
            .values()
            .any(|v| v.get("IsPastDue").and_then(Value::as_bool) == Some(true))
    }

    /// The trigger's name for the invocation (`sys.MethodName`), when given.
    pub fn method_name(&self) -> Option<&str> {
        self.metadata
            .get("sys")
            .and_then(|sys| sys.get("MethodName"))
            .and_then(Value::as_str)
    }
}

/// The answer to one invocation.
#[derive(Debug, Serialize, Deserialize)]
pub struct InvokeResponse {
    /// Output bindings by name: none for a timer function.
    #[serde(rename = "Outputs")]
    pub outputs: Map<String, Value>,
    /// The invocation's log lines.
    #[serde(rename = "Logs")]
    pub logs: Vec<String>,
    /// The run's result as JSON text ([`RunResult`]), for a `$return` binding and for
    /// whoever reads the answer.
    #[serde(rename = "ReturnValue")]
    pub return_value: String,
}

/// What `ReturnValue` holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct RunResult {
    /// `ok`, `failed` (the run or its build failed) or `refused` (another invocation's run
    /// was in progress; this one did nothing).
    pub status: String,
    /// The exit code `ca-notify run` would have exited with (`docs/operations.md`);
    /// absent when no run started (`refused`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exit_code: Option<u8>,
    /// One line saying why, when not `ok`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message: Option<String>,
    /// The run's deadline in seconds, derived from the function timeout.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub deadline_secs: Option<u64>,
    /// The run's summary, as `run --summary-json` writes it (absent when no run started).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub summary: Option<Value>,
}

impl InvokeResponse {
    /// An answer carrying `result` and these log lines.
    pub fn new(result: &RunResult, logs: Vec<String>) -> Self {
        Self {
            outputs: Map::new(),
            logs,
            return_value: serde_json::to_string(result)
                .unwrap_or_else(|e| format!("{{\"status\":\"failed\",\"message\":\"{e}\"}}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The timer payload as the host sends it (the docs' timer object under the binding's
    /// name, and `sys` metadata).
    #[test]
    fn reads_a_timer_invocation() {
        let body = r#"{
            "Data": {"timer": {"Schedule": {"AdjustForDST": true},
                               "ScheduleStatus": {"Last": "2016-10-04T10:15:00+00:00",
                                                  "LastUpdated": "2016-10-04T10:16:00+00:00",
                                                  "Next": "2016-10-04T10:20:00+00:00"},
                               "IsPastDue": true}},
            "Metadata": {"sys": {"MethodName": "ca-notify", "UtcNow": "2026-12-02T10:00:00Z",
                                 "RandGuid": "35e6e68c-5583-436c-a277-5aec2b416ba8"}}
        }"#;
        let request: InvokeRequest = serde_json::from_str(body).expect("parses");
        assert!(request.is_past_due());
        assert_eq!(request.method_name(), Some("ca-notify"));
        let empty: InvokeRequest = serde_json::from_str("{}").expect("parses");
        assert!(!empty.is_past_due());
    }

    #[test]
    fn answers_in_the_documented_shape() {
        let result = RunResult {
            status: "ok".into(),
            exit_code: Some(0),
            message: None,
            deadline_secs: Some(270),
            summary: Some(serde_json::json!({"sent": 3})),
        };
        let json = serde_json::to_value(InvokeResponse::new(&result, vec!["line".into()]))
            .expect("serialises");
        assert_eq!(json["Outputs"], serde_json::json!({}));
        assert_eq!(json["Logs"], serde_json::json!(["line"]));
        let back: RunResult =
            serde_json::from_str(json["ReturnValue"].as_str().expect("a string")).expect("json");
        assert_eq!(back.summary, Some(serde_json::json!({"sent": 3})));
    }
}
