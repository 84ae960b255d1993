//! A compromised or broken agent (real mTLS with the lab's srv1 certificate,
//! real gRPC) that streams far more output than the request's cap: the
//! controller stops reading at the cap and reports it, instead of holding
//! whatever the agent sends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aiops_e2e::{Lab, request};
use aiops_proto::agent::v1 as pb;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

const CHUNK: usize = 64 * 1024;
const CHUNKS: usize = 4096; // 256 MiB if nobody stops it

struct Flood {
    sent: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl pb::agent_server::Agent for Flood {
    type ExecuteStream = ReceiverStream<Result<pb::ExecEvent, Status>>;

    async fn execute(
        &self,
        _request: Request<pb::SignedCommand>,
    ) -> Result<Response<Self::ExecuteStream>, Status> {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let sent = self.sent.clone();
        tokio::spawn(async move {
            for _ in 0..CHUNKS {
                let chunk = pb::ExecEvent {
                    event: Some(pb::exec_event::Event::Output(pb::OutputChunk {
                        stream: pb::Stream::Stdout as i32,
                        data: vec![b'x'; CHUNK],
                        tail: false,
                    })),
                };
                if tx.send(Ok(chunk)).await.is_err() {
                    return; // the controller hung up
                }
                sent.fetch_add(1, Ordering::SeqCst);
            }
            let exit = pb::ExecEvent {
                event: Some(pb::exec_event::Event::Exit(pb::ExitStatus::default())),
            };
            let _ = tx.send(Ok(exit)).await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn describe(
        &self,
        _request: Request<pb::DescribeRequest>,
    ) -> Result<Response<pb::DescribeResponse>, Status> {
        Err(Status::unimplemented("not a real agent"))
    }

    async fn read_audit(
        &self,
        _request: Request<pb::ReadAuditRequest>,
    ) -> Result<Response<pb::ReadAuditPage>, Status> {
        Err(Status::unimplemented("not a real agent"))
    }
}

#[test]
fn output_beyond_the_cap_is_not_read() {
    // The lab's srv1 is configured but not started: the flood takes its port
    // and its certificate, so the controller's mTLS checks all pass.
    let lab = Lab::init(1, "lab");
    let pki = lab.dir.join("pki");
    let read = |p: &str| std::fs::read(pki.join(p)).unwrap();
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(
            read("agents/srv1.pem"),
            read("agents/srv1.key"),
        ))
        .client_ca_root(Certificate::from_pem(read("ca.pem")));
    let addr: std::net::SocketAddr = lab.agent_addr(1).parse().unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let service = pb::agent_server::AgentServer::new(Flood { sent: sent.clone() });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(async move {
        Server::builder()
            .tls_config(tls)
            .unwrap()
            .add_service(service)
            .serve_with_shutdown(addr, async {
                let _ = stop_rx.await;
            })
            .await
    });
    // Wait for the listener.
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "flood did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let out = aiops_e2e::run_cmd(
        &aiops_e2e::aiops_bin(),
        &["run"],
        &request("srv1", "hostname"),
        &[("AIOPS_CONFIG", lab.config().to_str().unwrap())],
        &[],
    );
    let answer = aiops_e2e::parse_answer(&out);
    assert_eq!(out.status.code(), Some(1), "{answer}");
    assert_eq!(answer["error"]["code"], "incomplete", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("more than the 65536 bytes of stdout"),
        "{message}"
    );
    // The controller stopped early: the flood could not push more than the
    // cap plus what HTTP/2 flow control and the channel buffer let through.
    let pushed = sent.load(Ordering::SeqCst) * CHUNK;
    assert!(pushed < 16 * 1024 * 1024, "the flood pushed {pushed} bytes");
    // The outcome is audited on the controller.
    let last = lab.audit().last().cloned().unwrap();
    assert_eq!(last["event"], "error", "{last}");
    assert_eq!(last["code"], "incomplete", "{last}");

    let _ = stop_tx.send(());
    let _ = rt.block_on(server);
}
