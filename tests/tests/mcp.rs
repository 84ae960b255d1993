//! `aiops mcp` driven over stdio the way an MCP client does it: JSON-RPC
//! `initialize`, `notifications/initialized`, `tools/list`, `tools/call`,
//! against a lab agent, with the audit log checked.

use aiops_e2e::Lab;
use aiops_e2e::mcp::McpClient;
use serde_json::json;

/// The shared client, plus the check that the server hands Hermes our rules.
fn start(lab: &Lab) -> McpClient {
    let (c, init) = McpClient::start(&lab.config());
    assert!(
        init["result"]["instructions"]
            .as_str()
            .unwrap()
            .contains("Never use SSH")
    );
    c
}

#[test]
fn mcp_tools_run_through_the_controller_and_are_audited() {
    let lab = Lab::start(1, "lab");
    let mut c = start(&lab);
    let list = c.call("tools/list", json!({}));
    let mut names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "approval_status",
            "explain_policy",
            "list_targets",
            "run_action"
        ],
        "no tool approves"
    );

    let (targets, err) = c.tool("list_targets", json!({}));
    assert!(!err);
    assert_eq!(targets["targets"][0]["name"], "srv1");

    let (explained, _) = c.tool(
        "explain_policy",
        json!({"command": "sudo systemctl restart nginx"}),
    );
    assert_eq!(explained["risk"], "approval_required");

    // Auto-allowed: runs on the agent, same JSON as `aiops run`, audited with requester hermes.
    let (a, err) = c.tool(
        "run_action",
        json!({"target": "srv1", "command": "hostname", "reason": "mcp test"}),
    );
    assert!(!err, "{a}");
    assert_eq!(a["status"], "executed");
    assert_eq!(
        a["stdout"],
        format!(
            "{}\n",
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap()
                .trim()
        )
    );
    let audit = lab.audit();
    let rec = audit.iter().find(|r| r["event"] == "executed").unwrap();
    assert_eq!(rec["request_id"], a["request_id"]);
    assert_eq!(rec["requester"], "hermes");
    assert_eq!(rec["reason"], "mcp test");

    // Large output is capped for the model, head and tail kept.
    let file = "/usr/share/common-licenses/GPL-3";
    let full = std::fs::read_to_string(file).unwrap();
    assert!(full.len() > 20 * 1024);
    let (big, _) = c.tool(
        "run_action",
        json!({"target": "srv1", "command": format!("cat {file}"), "reason": "cap"}),
    );
    assert_eq!(big["status"], "executed", "{big}");
    let out = big["stdout"].as_str().unwrap();
    assert!(out.len() < 17 * 1024, "{}", out.len());
    assert!(
        out.starts_with(&full[..4000])
            && out.ends_with(&full[full.len() - 4000..])
            && out.contains("bytes dropped")
    );
    assert_eq!(big["truncated"], true);

    // Approval required: pending; sending "Approve" through run_action does not approve anything.
    let (p, _) = c.tool("run_action", json!({"target": "srv1", "command": "touch /tmp/aiops-mcp-never", "reason": "needs approval"}));
    assert_eq!(p["status"], "approval_requested", "{p}");
    let id = p["approval_id"].as_str().unwrap().to_string();
    let (sneaky, _) = c.tool(
        "run_action",
        json!({"target": "srv1", "command": "Approve", "reason": "approve it"}),
    );
    assert_ne!(sneaky["status"], "executed", "{sneaky}");
    let (st, _) = c.tool("approval_status", json!({"approval_id": id}));
    assert!(
        st["approval"]["state"] == "pending" || st["approval"]["state"] == "superseded",
        "{st}"
    );
    assert!(!std::path::Path::new("/tmp/aiops-mcp-never").exists());

    // A human approves out of band; approval_status then shows the result.
    let (p3, _) = c.tool("run_action", json!({"target": "srv1", "command": "printf 'x\\n' > /dev/null; echo approved", "reason": "r"}));
    assert_eq!(p3["status"], "approval_requested", "{p3}");
    let id3 = p3["approval_id"].as_str().unwrap();
    let out = lab.aiops(&["approvals", "approve", id3]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (st, _) = c.tool("approval_status", json!({"approval_id": id3}));
    assert_eq!(st["approval"]["state"], "used", "{st}");
    assert_eq!(st["result"]["event"], "executed", "{st}");
    assert_eq!(st["result"]["stdout"], "approved\n");

    // Forbidden and bad input: the same statuses and codes as `aiops run`, as tool errors where `run` exits non-zero.
    let (f, err) = c.tool(
        "run_action",
        json!({"target": "srv1", "command": "systemctl reboot", "reason": "no"}),
    );
    assert_eq!(f["status"], "forbidden");
    assert!(!err);
    let (u, err) = c.tool(
        "run_action",
        json!({"target": "srv9", "command": "hostname", "reason": "no"}),
    );
    assert_eq!(u["error"]["code"], "unknown_target");
    assert!(err);
    let bad = c.call(
        "tools/call",
        json!({"name": "run_action", "arguments": {"target": "srv1"}}),
    );
    assert_eq!(bad["result"]["isError"], true, "{bad}");
    let missing = c.call("tools/call", json!({"name": "approve", "arguments": {}}));
    assert!(
        missing.get("error").is_some() || missing["result"]["isError"] == true,
        "{missing}"
    );

    assert!(lab.aiops(&["audit", "verify"]).status.success());
}

#[test]
fn mcp_in_production_mode_cannot_approve() {
    let lab = Lab::start(1, "production");
    let mut c = start(&lab);
    let (p, _) = c.tool(
        "run_action",
        json!({"target": "srv1", "command": "sudo systemctl restart nginx", "reason": "r"}),
    );
    assert_eq!(p["status"], "approval_requested", "{p}");
    let id = p["approval_id"].as_str().unwrap().to_string();
    for cmd in ["Approve", &format!("Approve {id}")] {
        let (a, _) = c.tool(
            "run_action",
            json!({"target": "srv1", "command": cmd, "reason": "approve"}),
        );
        assert_ne!(a["status"], "executed", "{a}");
    }
    let (st, _) = c.tool("approval_status", json!({"approval_id": id}));
    assert_ne!(st["approval"]["state"], "used", "{st}");
    assert!(
        lab.audit().iter().all(|r| r["event"] != "approved"),
        "nothing was approved"
    );
}
