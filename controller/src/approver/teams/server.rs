//! The bot's endpoint (`POST /api/messages`): HTTPS with the configured
//! certificate, or plain HTTP on a loopback address behind the operator's
//! reverse proxy. It only reads requests and hands them to the daemon, which
//! checks and answers them one at a time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Largest request body accepted.
const BODY_MAX: usize = 256 * 1024;
/// Teams gives up on an invoke after about 15 seconds; answer before that.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// A request for the daemon.
pub struct Job {
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The activity (JSON).
    pub body: Bytes,
    /// Where the HTTP status and JSON answer go (`Null`: an empty body).
    pub reply: tokio::sync::oneshot::Sender<(u16, Value)>,
}

fn respond(status: u16, body: &Value) -> Response<Full<Bytes>> {
    let bytes = if body.is_null() {
        Bytes::new()
    } else {
        Bytes::from(body.to_string())
    };
    let mut r = Response::new(Full::new(bytes));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if !body.is_null() {
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    r
}

async fn handle(
    req: Request<Incoming>,
    jobs: mpsc::Sender<Job>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    if req.uri().path() != "/api/messages" {
        return Ok(respond(404, &Value::Null));
    }
    if req.method() != hyper::Method::POST {
        return Ok(respond(405, &Value::Null));
    }
    let authorization = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = match Limited::new(req.into_body(), BODY_MAX).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(respond(413, &Value::Null)),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job = Job {
        authorization,
        body,
        reply: tx,
    };
    if jobs.send(job).is_err() {
        return Ok(respond(503, &Value::Null));
    }
    Ok(match tokio::time::timeout(ANSWER_WITHIN, rx).await {
        Ok(Ok((status, body))) => respond(status, &body),
        Ok(Err(_)) => respond(500, &Value::Null),
        // Still running the command: the card shows the outcome when it is done.
        Err(_) => respond(
            200,
            &super::message_response(
                "Working on it: the card will show the outcome when it is done.",
            ),
        ),
    })
}

/// The TLS acceptor for `cert` and `key` (rustls with the ring provider).
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    let certs = aiops_certs::tls::load_certs(cert).map_err(|e| e.to_string())?;
    let key = aiops_certs::tls::load_key(key).map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serves `listener` forever, handing each request to `jobs`.
pub fn serve(
    listener: std::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    jobs: mpsc::Sender<Job>,
) -> String {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return format!("runtime: {e}"),
    };
    rt.block_on(async move {
        if let Err(e) = listener.set_nonblocking(true) {
            return format!("listener: {e}");
        }
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => return format!("listener: {e}"),
        };
        loop {
            let (stream, peer): (_, SocketAddr) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    super::log(&format!("accept: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let jobs = jobs.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(req, jobs.clone()));
                let mut http = hyper::server::conn::http1::Builder::new();
                // A client that never finishes its headers is dropped.
                http.timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10));
                let result = match tls {
                    Some(acceptor) => {
                        match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(s)) => http.serve_connection(TokioIo::new(s), service).await,
                            Ok(Err(e)) => {
                                super::log(&format!("TLS handshake with {peer}: {e}"));
                                return;
                            }
                            Err(_) => return,
                        }
                    }
                    None => http.serve_connection(TokioIo::new(stream), service).await,
                };
                if let Err(e) = result {
                    tracing::debug!("connection from {peer}: {e}");
                }
            });
        }
    })
}
