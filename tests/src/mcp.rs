//! A minimal MCP client for `aiops mcp` over stdio (JSON-RPC, one object per line),
//! as a real MCP client drives it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{Value, json};

/// A running `aiops mcp`, initialized; killed on drop.
pub struct McpClient {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next: u64,
}

impl McpClient {
    /// Starts `aiops mcp` with `config`, runs `initialize` (checking the server name) and
    /// `notifications/initialized`; returns the client and the `initialize` response.
    pub fn start(config: &Path) -> (McpClient, Value) {
        let mut child = Command::new(crate::aiops_bin())
            .arg("mcp")
            .env("AIOPS_CONFIG", config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("aiops mcp starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut c = McpClient {
            child,
            stdin,
            stdout,
            next: 1,
        };
        let init = c.call(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}),
        );
        assert_eq!(init["result"]["serverInfo"]["name"], "aiops", "{init}");
        c.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        (c, init)
    }

    /// Sends one JSON-RPC message.
    pub fn send(&mut self, v: &Value) {
        writeln!(self.stdin, "{v}").expect("write to aiops mcp");
        self.stdin.flush().expect("flush");
    }

    /// Calls `method` and returns the response with the matching id.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let mut line = String::new();
            assert!(
                self.stdout.read_line(&mut line).expect("read") > 0,
                "aiops mcp closed stdout"
            );
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not JSON-RPC ({e}): {line}"));
            if v["id"] == id {
                return v;
            }
        }
    }

    /// Calls a tool; checks the result is the untrusted-data notice plus the answer,
    /// and returns (the answer JSON, isError).
    pub fn tool(&mut self, name: &str, args: Value) -> (Value, bool) {
        let r = self.call("tools/call", json!({"name": name, "arguments": args}));
        let result = &r["result"];
        let content = result["content"]
            .as_array()
            .unwrap_or_else(|| panic!("{r}"));
        assert_eq!(content.len(), 2, "{r}");
        assert!(
            content[0]["text"]
                .as_str()
                .unwrap_or_default()
                .contains("UNTRUSTED DATA"),
            "{r}"
        );
        let answer = serde_json::from_str(content[1]["text"].as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {r}"));
        (answer, result["isError"] == true)
    }
}

impl Drop for McpClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
