//! A small hyper HTTP tracker for tests, on its own thread, with misbehaving routes:
//!
//! - `/good/announce`: records the query and answers with `peers6` (and an empty `peers`);
//! - `/redirect/announce`: 302 to `/good/announce` with the same query;
//! - `/fail/announce`: a `failure reason`;
//! - `/garbage/announce`: HTML;
//! - `/slow/announce`: answers after 30 s;
//! - `/lie/announce`: hands out the addresses given to [`TestTracker::lie_with`] (the announcing
//!   peer's own, say);
//! - anything else: 404.
//!
//! Every request is counted per path, so tests can bound how often a client retries.

use std::collections::HashMap;
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
    state: Arc<State>,
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
        let state = Arc::new(State {
            announces: announces.clone(),
            peers6,
            lies: Mutex::new(Vec::new()),
            hits: Mutex::new(HashMap::new()),
        });
        let served = state.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(serve(listener, served, stopped));
        });
        Self {
            addr,
            announces,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// What `/lie/announce` hands out from now on.
    pub fn lie_with(&self, peers: Vec<SocketAddr>) {
        *self.state.lies.lock().unwrap() = peers;
    }

    /// Requests received for a route so far.
    pub fn hits(&self, route: &str) -> usize {
        let path = format!("/{route}/announce");
        self.state
            .hits
            .lock()
            .unwrap()
            .get(&path)
            .copied()
            .unwrap_or(0)
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

struct State {
    announces: Arc<Mutex<Vec<String>>>,
    peers6: Vec<SocketAddr>,
    lies: Mutex<Vec<SocketAddr>>,
    hits: Mutex<HashMap<String, usize>>,
}

async fn serve(
    listener: std::net::TcpListener,
    state: Arc<State>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stopped => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(request, &state).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn compact(peers: &[SocketAddr], v6: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for peer in peers {
        match peer.ip() {
            std::net::IpAddr::V6(ip) if v6 => out.extend(ip.octets()),
            std::net::IpAddr::V4(ip) if !v6 => out.extend(ip.octets()),
            _ => continue,
        }
        out.extend(peer.port().to_be_bytes());
    }
    out
}

async fn route(request: Request<Incoming>, state: &State) -> Response<Full<Bytes>> {
    let query = request.uri().query().unwrap_or("").to_owned();
    let path = request.uri().path().to_owned();
    *state.hits.lock().unwrap().entry(path.clone()).or_insert(0) += 1;
    let body = |status: StatusCode, bytes: Vec<u8>| {
        Response::builder()
            .status(status)
            .body(Full::new(Bytes::from(bytes)))
            .unwrap()
    };
    match path.as_str() {
        "/good/announce" => {
            state.announces.lock().unwrap().push(query);
            let mut reply = b"d8:intervali1800e12:min intervali60e5:peers0:6:peers6".to_vec();
            let peers = compact(&state.peers6, true);
            reply.extend(format!("{}:", peers.len()).as_bytes());
            reply.extend(peers);
            reply.extend(b"15:warning message9:test onlye");
            body(StatusCode::OK, reply)
        }
        "/lie/announce" => {
            let peers = compact(&state.lies.lock().unwrap(), false);
            let mut reply = format!("d8:intervali1800e5:peers{}:", peers.len()).into_bytes();
            reply.extend(peers);
            reply.push(b'e');
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
