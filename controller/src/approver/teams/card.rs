//! The Adaptive Cards the bot posts. Every text that comes from a request
//! (command, requester, reason, output) is a `TextRun` of a `RichTextBlock`,
//! which Teams shows as plain text: no Markdown is applied to it, so the
//! approver sees the exact command bytes.

use serde_json::{Value, json};

use super::super::telegram::clip;

/// Characters of the command shown on the card (Teams messages are limited to about 28 KB).
const COMMAND_MAX: usize = 2500;
/// Characters of each output stream shown on the card.
const OUTPUT_HEAD: usize = 1500;

/// The `contentType` of an Adaptive Card attachment.
pub const CARD_TYPE: &str = "application/vnd.microsoft.card.adaptive";

fn plain(label: &str, value: &str) -> Value {
    json!({"type": "RichTextBlock", "inlines": [
        {"type": "TextRun", "text": format!("{label}: "), "weight": "bolder"},
        {"type": "TextRun", "text": value},
    ]})
}

fn mono(value: &str) -> Value {
    json!({"type": "RichTextBlock", "inlines": [
        {"type": "TextRun", "text": value, "fontType": "monospace"},
    ]})
}

fn strings(a: &Value, k: &str) -> Vec<String> {
    a.get(k)
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The body elements describing a pending approval (kept in the state to rebuild the card).
pub fn request_body(a: &Value) -> Vec<Value> {
    let s = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut targets = strings(a, "targets");
    if targets.is_empty() {
        targets.push(s("target"));
    }
    let expires = a.get("expires_ms").and_then(Value::as_i64).unwrap_or(0);
    let minutes = (expires - aiops_sys::now_ms()).max(0) / 60_000;
    let command = s("command");
    let mut body = vec![
        json!({"type": "TextBlock", "text": "Approval needed", "weight": "bolder", "size": "medium", "wrap": true}),
        plain("Targets", &targets.join(", ")),
        json!({"type": "TextBlock", "text": "Command", "weight": "bolder", "spacing": "medium"}),
        mono(&clip(&command, COMMAND_MAX)),
    ];
    if command.chars().count() > COMMAND_MAX {
        body.push(plain(
            "Note",
            &format!(
                "{} bytes in all: too long to show here; read it with `aiops approvals list` before approving",
                command.len()
            ),
        ));
    }
    for (label, value) in crate::approvals::card::facts(a) {
        if label == "Plan" {
            body.push(json!({"type": "TextBlock", "text": "Plan (what runs)", "weight": "bolder", "spacing": "medium"}));
            body.push(mono(&clip(&value, COMMAND_MAX)));
        } else {
            body.push(plain(label, &value));
        }
    }
    body.extend([
        plain("Requested by", &s("requester")),
        plain("Reason", &s("reason")),
        plain("Risk", &s("risk")),
        plain("Policy", &strings(a, "reasons").join("; ")),
        plain(
            "Expires",
            &format!("{} (in {minutes} min)", aiops_sys::rfc3339_ms(expires)),
        ),
        plain("ID", &s("id")),
    ]);
    body
}

fn card(body: Vec<Value>, actions: Vec<Value>) -> Value {
    let mut c = json!({
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.4",
        "body": body,
    });
    if !actions.is_empty() {
        c["actions"] = Value::Array(actions);
    }
    c
}

/// The card of a pending approval: its facts and Approve / Deny (`Action.Execute`).
pub fn request_card(id: &str, body: &[Value]) -> Value {
    let action = |title: &str, verb: &str, style: &str| {
        json!({"type": "Action.Execute", "title": title, "verb": verb, "style": style,
               "data": {"approval_id": id}})
    };
    card(
        body.to_vec(),
        vec![
            action("Approve", "approve", "positive"),
            action("Deny", "deny", "destructive"),
        ],
    )
}

/// The card once resolved: the same facts, no buttons, and the outcome.
pub fn outcome_card(body: &[Value], headline: &str, details: &[(String, String)]) -> Value {
    let mut b = body.to_vec();
    b.push(
        json!({"type": "TextBlock", "text": "Outcome", "weight": "bolder", "spacing": "medium"}),
    );
    b.push(json!({"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": headline, "weight": "bolder"}]}));
    for (label, text) in details {
        b.push(json!({"type": "TextBlock", "text": label, "weight": "bolder"}));
        b.push(mono(text));
    }
    card(b, Vec::new())
}

/// A message activity carrying `card`.
pub fn activity(card: &Value) -> Value {
    json!({
        "type": "message",
        "attachments": [{"contentType": CARD_TYPE, "content": card}],
    })
}

/// What a press did, as (headline, details) for [`outcome_card`].
pub fn outcome(name: &str, a: &Value) -> (String, Vec<(String, String)>) {
    let status = a.get("status").and_then(Value::as_str).unwrap_or("error");
    let headline = match status {
        "denied" => return (format!("Denied by {name}. Nothing ran."), Vec::new()),
        "executed" => format!(
            "Approved by {name}. Executed: exit code {}{}{}",
            a.get("exit_code").unwrap_or(&Value::Null),
            if a.get("timed_out") == Some(&Value::Bool(true)) {
                " (timed out)"
            } else {
                ""
            },
            a.get("limit_exceeded")
                .and_then(Value::as_str)
                .map(|l| format!(" (limit exceeded: {l})"))
                .unwrap_or_default()
        ),
        "error" => format!(
            "Approved by {name}, but it failed: {}",
            super::super::telegram::failure_text_value(a)
        ),
        other => format!("Approved by {name}. Result: {other}"),
    };
    let mut details = Vec::new();
    for k in ["stdout", "stderr"] {
        if let Some(t) = a.get(k).and_then(Value::as_str)
            && !t.is_empty()
        {
            details.push((k.to_string(), clip(t, OUTPUT_HEAD)));
        }
    }
    if let Some(results) = a.get("results").and_then(Value::as_array) {
        let lines: Vec<String> = results
            .iter()
            .map(|r| {
                format!(
                    "{}: {} {}",
                    r.get("target").and_then(Value::as_str).unwrap_or("?"),
                    r.get("status").and_then(Value::as_str).unwrap_or("?"),
                    r.get("exit_code")
                        .map(|c| format!("exit {c}"))
                        .or_else(|| r.pointer("/error/code").map(|c| c.to_string()))
                        .unwrap_or_default()
                )
            })
            .collect();
        if !lines.is_empty() {
            details.push(("targets".into(), lines.join("\n")));
        }
    }
    (headline, details)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_text_is_never_markdown() {
        let a = json!({"id": "x", "target": "srv1", "command": "echo **bold** _x_ [a](http://e)",
            "requester": "hermes", "reason": "# r", "risk": "approval_required", "reasons": ["writes"], "expires_ms": 0});
        let body = request_body(&a);
        let text = serde_json::to_string(&body).unwrap();
        assert!(text.contains("echo **bold** _x_ [a](http://e)"));
        // Request-controlled text is only ever in TextRuns (plain text), never in a TextBlock.
        for el in &body {
            if el["type"] == "TextBlock" {
                assert!(!el["text"].as_str().unwrap().contains("**"), "{el}");
            }
        }
        let c = request_card("x", &body);
        assert_eq!(c["actions"][0]["type"], "Action.Execute");
        assert_eq!(c["actions"][0]["verb"], "approve");
        assert_eq!(c["actions"][1]["data"]["approval_id"], "x");
    }
}
