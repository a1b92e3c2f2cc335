//! Blocking calls (opening, checking, flushing storage) off the network thread.

use tokio::sync::oneshot;

/// Runs `f` on a thread of its own (for blocking storage calls) and waits for it.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (done, result) = oneshot::channel();
    std::thread::Builder::new()
        .name("ct-blocking".into())
        .spawn(move || {
            let _ = done.send(f());
        })
        .ok()?;
    result.await.ok()
}
