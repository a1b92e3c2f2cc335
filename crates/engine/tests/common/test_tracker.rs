//! A small hyper HTTP tracker for tests, on its own thread, with misbehaving routes:
//!
//! - `/good/announce`: records the query and answers with `peers6` (and an empty `peers`);
//! - `/redirect/announce`: 302 to `/good/announce` with the same query;
//! - `/fail/announce`: a `failure reason`;
//! - `/garbage/announce`: HTML;
//! - `/slow/announce`: answers after 30 s;
//! - anything else: 404.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// A running test tracker; it stops when dropped.
pub struct TestTracker {
    pub addr: SocketAddr,
    /// Query strings of the announces `/good/announce` received, in order.
    pub announces: Arc<Mutex<Vec<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestTracker {
    /// Starts a tracker whose good route hands out `peers6`.
    pub fn start(peers6: Vec<SocketAddr>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let announces = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let log = announces.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(serve(listener, log, Arc::new(peers6), stopped));
        });
        Self {
            addr,
            announces,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The URL of a route, e.g. `url("good")`.
    pub fn url(&self, route: &str) -> String {
        format!("http://{}/{route}/announce", self.addr)
    }

    /// The recorded announces' `event` values ("" for a regular announce).
    pub fn events(&self) -> Vec<String> {
        self.announces
            .lock()
            .unwrap()
            .iter()
            .map(|q| query_value(q, "event").unwrap_or_default())
            .collect()
    }
}

impl Drop for TestTracker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The raw (still percent-encoded) value of `key` in a query string.
pub fn query_value(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_owned())
}

async fn serve(
    listener: std::net::TcpListener,
    log: Arc<Mutex<Vec<String>>>,
    peers6: Arc<Vec<SocketAddr>>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stopped => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let (log, peers6) = (log.clone(), peers6.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let (log, peers6) = (log.clone(), peers6.clone());
                async move { Ok::<_, Infallible>(route(request, &log, &peers6).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(
    request: Request<Incoming>,
    log: &Mutex<Vec<String>>,
    peers6: &[SocketAddr],
) -> Response<Full<Bytes>> {
    let query = request.uri().query().unwrap_or("").to_owned();
    let body = |status: StatusCode, bytes: Vec<u8>| {
        Response::builder()
            .status(status)
            .body(Full::new(Bytes::from(bytes)))
            .unwrap()
    };
    match request.uri().path() {
        "/good/announce" => {
            log.lock().unwrap().push(query);
            let mut reply = b"d8:intervali1800e12:min intervali60e5:peers0:6:peers6".to_vec();
            let mut compact = Vec::new();
            for peer in peers6 {
                if let std::net::IpAddr::V6(ip) = peer.ip() {
                    compact.extend(ip.octets());
                    compact.extend(peer.port().to_be_bytes());
                }
            }
            reply.extend(format!("{}:", compact.len()).as_bytes());
            reply.extend(compact);
            reply.extend(b"15:warning message9:test onlye");
            body(StatusCode::OK, reply)
        }
        "/redirect/announce" => Response::builder()
            .status(StatusCode::FOUND)
            .header("location", format!("/good/announce?{query}"))
            .body(Full::new(Bytes::new()))
            .unwrap(),
        "/fail/announce" => body(
            StatusCode::OK,
            b"d14:failure reason20:unregistered torrente".to_vec(),
        ),
        "/garbage/announce" => body(StatusCode::OK, b"<html>It works!</html>".to_vec()),
        "/slow/announce" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            body(StatusCode::OK, b"d8:intervali60ee".to_vec())
        }
        _ => body(StatusCode::NOT_FOUND, b"not found".to_vec()),
    }
}
