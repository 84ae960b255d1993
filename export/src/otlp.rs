//! OTLP sinks: OpenTelemetry logs over HTTP (protobuf, `POST /v1/logs`) or
//! gRPC (`LogsService/Export` on our tonic), with the messages generated
//! by the `opentelemetry-proto` crate.
//!
//! Why not `opentelemetry-otlp`'s exporter: it takes SDK log records from a
//! logging bridge and reports a batch's fate only to its batch processor;
//! the audit exporter has to know that each batch was accepted before it
//! moves its durable position, and to send our chain fields with their own
//! types. The generated client and messages give exactly that, on the
//! tonic 0.14 and prost 0.14 we already build.
//!
//! One `LogRecord` per audit record: `time_unix_nano` from `ts`,
//! `observed_time_unix_nano` when exported, severity from the event,
//! `event_name` `aiops.audit.<event>`, the body the whole redacted record
//! as canonical JSON, and the attributes of [`super::fields`]. The resource
//! carries `service.name`, `service.version` and `host.name`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse, logs_service_client::LogsServiceClient,
};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde::Deserialize;
use serde_json::Value;

use super::{Exported, Sink, Source, fields, rel};

/// An OTLP sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// Sink name.
    pub name: String,
    /// HTTP: the full URL (`http://127.0.0.1:4318/v1/logs`); gRPC: the
    /// server (`http://127.0.0.1:4317`, or `https://` with `ca`).
    pub endpoint: String,
    /// CA certificate(s) for an `https://` endpoint.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Request limit.
    #[serde(default = "d_timeout")]
    pub timeout_ms: u64,
}

fn d_timeout() -> u64 {
    10_000
}

impl OtlpConfig {
    pub(crate) fn resolve(&mut self, base: &Path) {
        if let Some(c) = &mut self.ca {
            rel(base, c);
        }
    }
}

fn s(v: impl Into<String>) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    })
}

fn kv(key: &str, value: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value,
        ..Default::default()
    }
}

/// A JSON value as an OTel `AnyValue` (integers stay integers).
pub fn any(v: &Value) -> Option<AnyValue> {
    let value = match v {
        Value::Null => return None,
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(x) => any_value::Value::StringValue(x.clone()),
        Value::Array(a) => any_value::Value::ArrayValue(ArrayValue {
            values: a.iter().filter_map(any).collect(),
        }),
        Value::Object(m) => any_value::Value::KvlistValue(KeyValueList {
            values: m.iter().map(|(k, v)| kv(k, any(v))).collect(),
        }),
    };
    Some(AnyValue { value: Some(value) })
}

/// One audit record as an OTel log record.
pub fn log_record(e: &Exported, observed_ns: u64) -> LogRecord {
    let (number, text) = match e.level() {
        0 => (SeverityNumber::Info, "INFO"),
        1 => (SeverityNumber::Warn, "WARN"),
        _ => (SeverityNumber::Error, "ERROR"),
    };
    let mut attributes = Vec::new();
    for (k, v) in &e.fields {
        match k.as_str() {
            "requester" => {
                attributes.push(kv("user.name", any(v)));
                attributes.push(kv("aiops.requester", any(v)));
            }
            "event" => attributes.push(kv("aiops.event", any(v))),
            _ => {
                if let Some(name) = fields::otel_attribute(k) {
                    attributes.push(kv(&name, any(v)));
                }
            }
        }
    }
    attributes.push(kv(
        "aiops.redacted",
        Some(AnyValue {
            value: Some(any_value::Value::BoolValue(e.redacted)),
        }),
    ));
    LogRecord {
        time_unix_nano: u64::try_from(e.ts_ms).unwrap_or(0) * 1_000_000,
        observed_time_unix_nano: observed_ns,
        severity_number: number as i32,
        severity_text: text.into(),
        body: s(e.json()),
        attributes,
        event_name: format!("aiops.audit.{}", e.event),
        ..Default::default()
    }
}

/// The request for one batch.
pub fn request(batch: &[Exported], source: &Source) -> ExportLogsServiceRequest {
    let observed = u64::try_from(aiops_sys::now_ms()).unwrap_or(0) * 1_000_000;
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s(&source.service_name)),
                    kv("service.version", s(env!("CARGO_PKG_VERSION"))),
                    kv("host.name", s(&source.host_name)),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "aiops.audit".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                log_records: batch.iter().map(|e| log_record(e, observed)).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn check_partial(resp: &ExportLogsServiceResponse) -> Result<(), String> {
    match &resp.partial_success {
        Some(p) if p.rejected_log_records > 0 => Err(format!(
            "receiver rejected {} records: {}",
            p.rejected_log_records, p.error_message
        )),
        _ => Ok(()),
    }
}

/// OTLP/HTTP with protobuf bodies.
pub struct OtlpHttpSink {
    config: OtlpConfig,
    source: Source,
    agent: ureq::Agent,
}

impl OtlpHttpSink {
    /// A client for the endpoint.
    pub fn new(config: OtlpConfig, source: Source) -> Result<OtlpHttpSink, String> {
        let mut b = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .user_agent(concat!("aiops-audit-export/", env!("CARGO_PKG_VERSION")))
            .timeout_global(Some(Duration::from_millis(config.timeout_ms.max(1))));
        if let Some(ca) = &config.ca {
            let certs = aiops_certs::tls::load_certs(ca).map_err(|e| e.to_string())?;
            let certs: Vec<ureq::tls::Certificate<'static>> = certs
                .iter()
                .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
                .collect();
            b = b.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                    .build(),
            );
        }
        Ok(OtlpHttpSink {
            config,
            source,
            agent: b.build().into(),
        })
    }
}

impl Sink for OtlpHttpSink {
    fn send(&mut self, batch: &[Exported]) -> Result<(), String> {
        let body = request(batch, &self.source).encode_to_vec();
        let mut resp = self
            .agent
            .post(&self.config.endpoint)
            .header("Content-Type", "application/x-protobuf")
            .send(&body[..])
            .map_err(|e| format!("{}: {e}", self.config.endpoint))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(1024 * 1024)
            .read_to_vec()
            .unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(format!(
                "{}: HTTP {status} {}",
                self.config.endpoint,
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            ));
        }
        let decoded = ExportLogsServiceResponse::decode(&bytes[..]).unwrap_or_default();
        check_partial(&decoded)
    }
}

/// OTLP/gRPC.
pub struct OtlpGrpcSink {
    config: OtlpConfig,
    source: Source,
    rt: tokio::runtime::Runtime,
    client: Option<LogsServiceClient<tonic::transport::Channel>>,
}

impl OtlpGrpcSink {
    /// Checks the endpoint; connects when sending.
    pub fn new(config: OtlpConfig, source: Source) -> Result<OtlpGrpcSink, String> {
        tonic::transport::Endpoint::from_shared(config.endpoint.clone())
            .map_err(|e| format!("{}: {e}", config.endpoint))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        Ok(OtlpGrpcSink {
            config,
            source,
            rt,
            client: None,
        })
    }

    async fn connect(&self) -> Result<LogsServiceClient<tonic::transport::Channel>, String> {
        let timeout = Duration::from_millis(self.config.timeout_ms.max(1));
        let mut ep = tonic::transport::Endpoint::from_shared(self.config.endpoint.clone())
            .map_err(|e| e.to_string())?
            .connect_timeout(timeout)
            .timeout(timeout);
        if let Some(ca) = &self.config.ca {
            let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
            ep = ep
                .tls_config(
                    tonic::transport::ClientTlsConfig::new()
                        .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
                )
                .map_err(|e| e.to_string())?;
        }
        let ch = ep
            .connect()
            .await
            .map_err(|e| format!("connect {}: {e}", self.config.endpoint))?;
        Ok(LogsServiceClient::new(ch))
    }
}

impl Sink for OtlpGrpcSink {
    fn send(&mut self, batch: &[Exported]) -> Result<(), String> {
        let req = request(batch, &self.source);
        let client = match self.client.take() {
            Some(c) => c,
            None => self.rt.block_on(self.connect())?,
        };
        let mut c = client.clone();
        let resp = self
            .rt
            .block_on(c.export(req))
            .map_err(|e| format!("{}: {e}", self.config.endpoint))?;
        self.client = Some(client);
        check_partial(resp.get_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn record_maps_to_the_log_data_model_and_semantic_conventions() {
        let Value::Object(m) = json!({
            "event": "executed", "seq": 2, "hash": "h2", "prev": "h1",
            "ts": "2026-12-01T20:00:00.000Z", "command": "systemctl restart nginx",
            "exit_code": 3, "requester": "hermes", "target": "srv1",
            "reasons": ["approved"], "stdout": "out",
        }) else {
            unreachable!()
        };
        let r = log_record(&Exported::new(&m), 5);
        assert_eq!(r.severity_number, SeverityNumber::Warn as i32);
        assert_eq!(r.event_name, "aiops.audit.executed");
        assert_eq!(r.time_unix_nano, 1_796_155_200_000_000_000);
        let get = |k: &str| {
            r.attributes
                .iter()
                .find(|a| a.key == k)
                .and_then(|a| a.value.clone())
                .and_then(|v| v.value)
        };
        assert_eq!(
            get("process.exit.code"),
            Some(any_value::Value::IntValue(3))
        );
        assert_eq!(
            get("process.command_line"),
            Some(any_value::Value::StringValue(
                "systemctl restart nginx".into()
            ))
        );
        assert_eq!(
            get("user.name"),
            Some(any_value::Value::StringValue("hermes".into()))
        );
        assert_eq!(get("aiops.chain.seq"), Some(any_value::Value::IntValue(2)));
        assert!(get("aiops.stdout").is_none());
        assert!(matches!(
            get("aiops.reasons"),
            Some(any_value::Value::ArrayValue(_))
        ));
    }
}
