//! A response body as the plugin reads it: with the between-bytes time-out of the request,
//! cut at the plugin's `max_response_kb`, holding the request's slots among those in flight
//! (of its delivery, and to its origin) until it is done or dropped.

use crate::runtime::bounds::{DeliveryBounds, limit};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;
use wasmtime_wasi_http::Error;

/// [`Incoming`] with the host's bounds: fails with [`Error::ConnectionReadTimeout`] when no
/// frame arrives within `between_bytes`, and with [`Error::HttpResponseBodySize`] (recording
/// the limit) past `max_bytes`.
pub struct ResponseBody {
    incoming: Incoming,
    between_bytes: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    read: u64,
    max_bytes: u64,
    bounds: DeliveryBounds,
    slots: Option<[OwnedSemaphorePermit; 2]>,
}

impl ResponseBody {
    /// Wraps `incoming`; the first frame is due within `between_bytes` from now.
    pub fn new(
        incoming: Incoming,
        between_bytes: Duration,
        max_bytes: u64,
        bounds: DeliveryBounds,
        slots: [OwnedSemaphorePermit; 2],
    ) -> Self {
        ResponseBody {
            incoming,
            between_bytes,
            deadline: Box::pin(tokio::time::sleep(between_bytes)),
            read: 0,
            max_bytes,
            bounds,
            slots: Some(slots),
        }
    }

    /// Ends the body: frees the request's slots.
    fn end<T>(&mut self, last: T) -> Poll<T> {
        self.slots = None;
        Poll::Ready(last)
    }
}

impl Body for ResponseBody {
    type Data = bytes::Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, Error>>> {
        let this = &mut *self;
        if this.slots.is_none() {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let size = frame.data_ref().map_or(0, |data| data.len() as u64);
                this.read += size;
                if this.read > this.max_bytes {
                    this.bounds.refuse(limit(
                        "a response body longer than allowed".into(),
                        "max_response_kb",
                        this.max_bytes >> 10,
                    ));
                    let max = Some(this.max_bytes);
                    return this.end(Some(Err(Error::HttpResponseBodySize(max))));
                }
                let next = tokio::time::Instant::now() + this.between_bytes;
                this.deadline.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => this.end(Some(Err(Error::from(error)))),
            Poll::Ready(None) => this.end(None),
            Poll::Pending => {
                ready!(this.deadline.as_mut().poll(cx));
                this.end(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.slots.is_none() || self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}
