//! The operations endpoint: `/metrics`, `/healthz`, `/readyz`, served over HTTP/1.1 on its
//! own thread, for `replay --metrics-addr` and (later) `run`.
//!
//! It binds **loopback by default** (`output.metrics_addr = "127.0.0.1:9898"`): the figures
//! are operational, but an operator decides whether anything beyond the host may read
//! them. Nothing it serves names a person (see [`crate::metrics`] for the label bounds).
//!
//! - `GET /metrics` — the Prometheus text exposition ([`Metrics::render`]).
//! - `GET /healthz` — 200 while the process is up.
//! - `GET /readyz` — 200 when the sources are connected, state is restored and the
//!   watermark is moving; otherwise 503 with the failing checks in the body.
//!
//! The server runs on a single-threaded async runtime of its own, so a slow scraper never
//! takes a pipeline thread; [`Server::shutdown`] (or dropping the server) closes it and
//! any open connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::sync::oneshot;

use crate::metrics::{Metrics, CONTENT_TYPE};

/// A running endpoint.
pub struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) and serves `metrics` until shut down.
    /// Logs `metrics listening on ADDR` with the bound address.
    pub fn start(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<Server> {
        let listener = std::net::TcpListener::bind(addr).with_context(|| format!("metrics endpoint: cannot listen on {addr}"))?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build().context("metrics endpoint runtime")?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(metrics);
        let thread = std::thread::Builder::new().name("metrics-http".into()).spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => {
                        tokio::spawn(async move {
                            if let Err(e) = axum::serve(listener, app).await {
                                tracing::error!(error = %e, "metrics endpoint failed");
                            }
                        });
                        let _ = stopped.await;
                    }
                    Err(e) => tracing::error!(error = %e, "metrics endpoint failed"),
                }
            });
            // Dropping the runtime here ends the server task and every open connection.
        })?;
        tracing::info!("metrics listening on {local}");
        Ok(Server { addr: local, stop: Some(stop), thread: Some(thread) })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and waits for the server thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// The routes, for embedding in another server.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new().route("/metrics", get(metrics_page)).route("/healthz", get(healthz)).route("/readyz", get(readyz)).with_state(metrics)
}

async fn metrics_page(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], m.render())
}

async fn healthz() -> impl IntoResponse {
    "ok\n"
}

async fn readyz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    let r = m.readiness();
    if r.is_ready() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}\n", r.problems().join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;

    fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status = out.split(' ').nth(1).unwrap().parse().unwrap();
        (status, out.split_once("\r\n\r\n").unwrap().1.to_string())
    }

    #[test]
    fn serves_health_readiness_and_metrics_on_loopback() {
        let m = Arc::new(Metrics::new());
        let server = Server::start("127.0.0.1:0".parse().unwrap(), m.clone()).unwrap();
        let addr = server.local_addr();
        assert!(addr.ip().is_loopback());
        assert_eq!(get(addr, "/healthz").0, 200);
        let (status, body) = get(addr, "/readyz");
        assert_eq!(status, 503);
        assert!(body.contains("sources not connected"), "{body}");
        m.set_sources_connected(true);
        m.set_state_restored(true);
        m.set_watermark(Some(chrono::Utc::now()));
        assert_eq!(get(addr, "/readyz").0, 200);
        let (status, body) = get(addr, "/metrics");
        assert_eq!(status, 200);
        assert!(body.contains("brevvakt_build_info{version="), "{body}");
        assert_eq!(get(addr, "/nope").0, 404);
        server.shutdown();
        assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(), "closed after shutdown");
    }
}
