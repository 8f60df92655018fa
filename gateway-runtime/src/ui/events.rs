//! The page's live updates: a `text/event-stream` that says `change` whenever the index applied
//! a store change, with a keep-alive comment in between. The stream ends with the session, at
//! shutdown, or when the client goes away.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::BodyExt as _;
use hyper::body::Frame;
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};

use crate::response::{Body, BoxError};

/// Seconds between keep-alive comments.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A body fed by a channel.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0
            .poll_recv(cx)
            .map(|next| next.map(|b| Ok(Frame::data(b))))
    }
}

/// The event stream of a session that ends at `expires` (on `clock`'s time).
pub(super) fn stream(
    mut versions: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
    expires: OffsetDateTime,
    clock: std::sync::Arc<dyn cert_store::Clock>,
) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    tokio::spawn(async move {
        versions.mark_unchanged();
        if tx
            .send(Bytes::from_static(b"retry: 3000\n: connected\n\n"))
            .await
            .is_err()
        {
            return;
        }
        loop {
            let message = tokio::select! {
                changed = versions.changed() => match changed {
                    Ok(()) => {
                        let version = *versions.borrow_and_update();
                        Bytes::from(format!("event: change\ndata: {version}\n\n"))
                    }
                    Err(_) => return,
                },
                () = tokio::time::sleep(KEEP_ALIVE) => Bytes::from_static(b": keep-alive\n\n"),
                _ = stop.changed() => return,
                () = tx.closed() => return,
            };
            if clock.now() >= expires || tx.send(message).await.is_err() {
                return;
            }
        }
    });
    let mut response = Response::new(ChannelBody(rx).boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
