//! The mTLS gRPC client side: connect to an agent, send one signed command,
//! collect its streamed output.

use std::sync::Arc;
use std::time::Duration;

use aiops_certs::signing::SigningKey;
use aiops_proto::agent::v1 as pb;
use aiops_proto::agent::v1::agent_client::AgentClient;
use prost::Message;
use rustls_pki_types::ServerName;
use tonic::transport::{Channel, Endpoint, Uri};

/// Why a call did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// TCP or TLS connection failed, or timed out.
    #[error("cannot reach {address}: {message}")]
    Unreachable {
        /// The agent's address.
        address: String,
        /// What failed.
        message: String,
    },
    /// The agent answered with a gRPC error (its refusals start with a reason code).
    #[error("{message}")]
    Refused {
        /// gRPC code.
        code: tonic::Code,
        /// Agent's message, `reason: explanation`.
        message: String,
    },
    /// No final status in time, or more output than asked for.
    #[error("{0}")]
    Incomplete(String),
    /// The agent accepted the request (its stream had started) and then the
    /// stream ended without a final status: the command may have run, its
    /// outcome is unknown here. Never a refusal.
    #[error("{0}")]
    Lost(String),
    /// The output could not be stored (`save_output`: writing its file failed).
    #[error("{0}")]
    Output(String),
}

impl ClientError {
    /// The agent's reason code for a refusal (`replayed`, `bad_signature`, ...).
    pub fn reason(&self) -> Option<&str> {
        match self {
            ClientError::Refused { message, .. } => message.split(':').next(),
            _ => None,
        }
    }
}

/// Opens a channel to `address`, verifying the agent certificate for `server_name`.
pub async fn connect(
    address: &str,
    server_name: &str,
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
) -> Result<Channel, ClientError> {
    let unreachable = |message: String| ClientError::Unreachable {
        address: address.to_string(),
        message,
    };
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| unreachable(format!("server name {server_name:?}: {e}")))?;
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| unreachable(e.to_string()))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true);
    let addr = address.to_string();
    let connector = tokio_rustls::TlsConnector::from(tls);
    let connect = endpoint.connect_with_connector(tower::service_fn(move |_: Uri| {
        let addr = addr.clone();
        let name = name.clone();
        let connector = connector.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(&addr).await?;
            tcp.set_nodelay(true)?;
            let tls = connector.connect(name, tcp).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    }));
    match tokio::time::timeout(connect_timeout, connect).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(e)) => Err(unreachable(error_chain(&e))),
        Err(_) => Err(unreachable(format!(
            "no connection within {} ms",
            connect_timeout.as_millis()
        ))),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// Signs an encoded request with the controller key.
pub fn sign(request: &pb::CommandRequest, key: &SigningKey) -> pb::SignedCommand {
    let bytes = request.encode_to_vec();
    pb::SignedCommand {
        signature: key.sign(&bytes),
        request: bytes,
        key_id: key.verifying_key().key_id(),
        approval: Vec::new(),
    }
}

/// Output of one executed command.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    /// Head of stdout as streamed.
    pub stdout_head: Vec<u8>,
    /// Kept tail of stdout (only when bytes were dropped or after the head was full).
    pub stdout_tail: Vec<u8>,
    /// Head of stderr.
    pub stderr_head: Vec<u8>,
    /// Tail of stderr.
    pub stderr_tail: Vec<u8>,
    /// The final status.
    pub exit: pb::ExitStatus,
}

impl Collected {
    /// stdout as text: head, a marker where bytes were dropped, tail.
    pub fn stdout_text(&self) -> String {
        join(
            &self.stdout_head,
            &self.stdout_tail,
            self.exit.stdout_dropped,
        )
    }
    /// stderr as text, like [`Collected::stdout_text`].
    pub fn stderr_text(&self) -> String {
        join(
            &self.stderr_head,
            &self.stderr_tail,
            self.exit.stderr_dropped,
        )
    }
}

/// Where streamed output goes, chunk by chunk, in the order the agent sent it.
pub trait OutputSink {
    /// One chunk of stdout (`stdout`) or stderr; `tail` for the kept tail sent
    /// at the end. May wait (a file behind a slow disk): only this stream waits.
    fn output(
        &mut self,
        stdout: bool,
        tail: bool,
        data: &[u8],
    ) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
}

impl OutputSink for Collected {
    async fn output(&mut self, stdout: bool, tail: bool, data: &[u8]) -> std::io::Result<()> {
        let buf = match (stdout, tail) {
            (true, false) => &mut self.stdout_head,
            (true, true) => &mut self.stdout_tail,
            (false, false) => &mut self.stderr_head,
            (false, true) => &mut self.stderr_tail,
        };
        buf.extend_from_slice(data);
        Ok(())
    }
}

fn join(head: &[u8], tail: &[u8], dropped: u64) -> String {
    crate::contract::excerpt::join(head, dropped, "dropped", tail)
}

/// Sends `signed` and collects the streamed answer; gives up after `deadline`.
pub async fn execute(
    channel: Channel,
    signed: pb::SignedCommand,
    deadline: Duration,
) -> Result<Collected, ClientError> {
    let mut out = Collected::default();
    out.exit = execute_into(channel, signed, deadline, &mut out)
        .await?
        .exit;
    Ok(out)
}

/// The final status and what arrived: the SHA-256 of each stream's chunks
/// in the order received (what the agent's receipt signs as sent).
#[derive(Debug, Clone, Default)]
pub struct Finished {
    /// The final status (with the agent's receipt).
    pub exit: pb::ExitStatus,
    /// Hex SHA-256 of the stdout bytes received.
    pub stdout_sha256: String,
    /// Hex SHA-256 of the stderr bytes received.
    pub stderr_sha256: String,
    /// stdout bytes received.
    pub stdout_received: u64,
    /// stderr bytes received.
    pub stderr_received: u64,
}

/// Sends `signed` and hands each output chunk to `sink` as it arrives;
/// returns the final status. Gives up after `deadline`, or when `sink` fails.
pub async fn execute_into<S: OutputSink + Send>(
    channel: Channel,
    signed: pb::SignedCommand,
    deadline: Duration,
    sink: &mut S,
) -> Result<Finished, ClientError> {
    // What the agent may send per stream is what we asked for: more is a
    // misbehaving agent, stopped before it can fill this host's memory.
    let cap = pb::CommandRequest::decode(signed.request.as_slice())
        .map(|r| r.output_cap_bytes)
        .unwrap_or(0);
    let mut within = WithinCap::new(cap);
    let mut digests = [
        ring::digest::Context::new(&ring::digest::SHA256),
        ring::digest::Context::new(&ring::digest::SHA256),
    ];
    let mut received = [0u64; 2];
    let run = async move {
        let mut client = AgentClient::new(channel);
        let mut stream = client.execute(signed).await.map_err(refused)?.into_inner();
        let mut exit = None;
        while let Some(ev) = stream.message().await.map_err(lost)? {
            match ev.event {
                Some(pb::exec_event::Event::Output(c)) => {
                    let stdout = c.stream == pb::Stream::Stdout as i32;
                    within.take(stdout, c.data.len())?;
                    digests[usize::from(stdout)].update(&c.data);
                    received[usize::from(stdout)] += c.data.len() as u64;
                    sink.output(stdout, c.tail, &c.data)
                        .await
                        .map_err(|e| ClientError::Output(e.to_string()))?;
                }
                Some(pb::exec_event::Event::Exit(st)) => exit = Some(st),
                None => {}
            }
        }
        let exit = exit.ok_or_else(|| {
            ClientError::Lost(
                "the agent accepted the request, then closed the stream without a final \
                 status: it may have run, the outcome is unknown here"
                    .into(),
            )
        })?;
        let [stderr_d, stdout_d] = digests;
        Ok(Finished {
            exit,
            stdout_sha256: hex::encode(stdout_d.finish().as_ref()),
            stderr_sha256: hex::encode(stderr_d.finish().as_ref()),
            stdout_received: received[1],
            stderr_received: received[0],
        })
    };
    tokio::time::timeout(deadline, run).await.map_err(|_| {
        ClientError::Incomplete(format!("no final status within {} s", deadline.as_secs()))
    })?
}

/// Bytes received per stream, against the cap the request asked for.
#[derive(Debug)]
struct WithinCap {
    cap: u64,
    seen: [u64; 2],
}

impl WithinCap {
    fn new(cap: u64) -> WithinCap {
        WithinCap { cap, seen: [0, 0] }
    }

    fn take(&mut self, stdout: bool, n: usize) -> Result<(), ClientError> {
        let seen = &mut self.seen[usize::from(stdout)];
        *seen = seen.saturating_add(n as u64);
        if *seen > self.cap {
            return Err(ClientError::Incomplete(format!(
                "the agent sent more than the {} bytes of {} asked for; stopped reading",
                self.cap,
                if stdout { "stdout" } else { "stderr" }
            )));
        }
        Ok(())
    }
}

fn refused(s: tonic::Status) -> ClientError {
    match s.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown if s.message().contains("transport") => {
            ClientError::Unreachable {
                address: String::new(),
                message: s.message().to_string(),
            }
        }
        code => ClientError::Refused {
            code,
            message: s.message().to_string(),
        },
    }
}

/// An error once the agent's stream had started: it had accepted the request.
fn lost(s: tonic::Status) -> ClientError {
    ClientError::Lost(format!(
        "the agent accepted the request, then the stream broke without a final status \
         ({}: {}): it may have run, the outcome is unknown here",
        s.code(),
        s.message()
    ))
}

/// Reads one page of an agent's audit log (`ReadAudit`).
pub async fn read_audit(
    channel: Channel,
    from_seq: u64,
    max_records: u32,
    cursor: (u64, &str),
) -> Result<pb::ReadAuditPage, ClientError> {
    AgentClient::new(channel)
        .max_decoding_message_size(16 << 20)
        .read_audit(pb::ReadAuditRequest {
            from_seq,
            max_records,
            offset: cursor.0,
            prev_hash: cursor.1.to_string(),
        })
        .await
        .map(tonic::Response::into_inner)
        .map_err(refused)
}

/// Calls `Describe` on an agent.
pub async fn describe(channel: Channel) -> Result<pb::DescribeResponse, ClientError> {
    AgentClient::new(channel)
        .describe(pb::DescribeRequest {})
        .await
        .map(tonic::Response::into_inner)
        .map_err(refused)
}

#[cfg(test)]
mod cap_tests {
    use super::WithinCap;

    #[test]
    fn output_beyond_the_requested_cap_is_refused_per_stream() {
        let mut w = WithinCap::new(100);
        assert!(w.take(true, 60).is_ok());
        assert!(w.take(true, 40).is_ok()); // exactly the cap
        assert!(w.take(false, 100).is_ok()); // stderr counts on its own
        let err = w.take(true, 1).unwrap_err().to_string();
        assert!(err.contains("more than the 100 bytes of stdout"), "{err}");
        assert!(w.take(false, 1).is_err());
        assert!(WithinCap::new(0).take(true, 1).is_err());
        assert!(WithinCap::new(0).take(true, 0).is_ok());
    }
}
