//! `GET /callcontrol/ws`: the event WebSocket.
//!
//! The Bearer check runs as middleware before the upgrade, so a bad or superseded token gets a
//! plain `401`; the refuse-upgrades fault answers `401` here too. The socket subscribes to the
//! bus before the upgrade completes, so no change after the `101` is missed, and sends nothing
//! until the first change. Each frame gets the socket's own sequence number, counting from 1.
//! Pings are answered by the WebSocket layer as the socket keeps reading; anything else the
//! client sends is ignored. The socket ends on a close frame from either side, a `drop_sockets`
//! fault or simulator shutdown (with a close frame), or an `abnormal_close` fault (without one:
//! the TCP connection just ends).

use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use serde_json::json;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::state::{Frame, Shared};

/// The upgrade handler.
pub(crate) async fn upgrade(State(shared): State<Arc<Shared>>, ws: WebSocketUpgrade) -> Response {
    if shared.faults.refusing_upgrades() {
        return (StatusCode::UNAUTHORIZED, "upgrade refused").into_response();
    }
    let frames = shared.bus.subscribe();
    ws.on_upgrade(move |socket| serve(shared, socket, frames))
}

async fn serve(
    shared: Arc<Shared>,
    mut socket: WebSocket,
    mut frames: tokio::sync::broadcast::Receiver<Frame>,
) {
    shared.sockets.send_modify(|n| *n += 1);
    let mut sequence: u64 = 0;
    loop {
        tokio::select! {
            frame = frames.recv() => {
                if let Err(end) = send_waiting(&mut socket, &mut frames, frame, &mut sequence).await {
                    if matches!(end, End::Close) {
                        let _ = socket.send(Message::Close(None)).await;
                    }
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    shared.sockets.send_modify(|n| *n -= 1);
}

/// Why a socket ends.
enum End {
    /// With a close frame: a `drop_sockets` fault or shutdown.
    Close,
    /// Without one: an `abnormal_close` fault, or the client went away.
    Abort,
}

/// The most frames written with one flush, so that the socket still reads what the client
/// sends (a close, pings) while the bus stays busy.
const FRAMES_PER_FLUSH: usize = 4096;

/// Writes `first` and the frames already waiting on the bus behind it (at most
/// [`FRAMES_PER_FLUSH`]), then flushes once: a burst of repeats (hundreds of frames at one
/// tick) costs one write, as TCP would coalesce it anyway, instead of one per frame.
async fn send_waiting(
    socket: &mut WebSocket,
    frames: &mut tokio::sync::broadcast::Receiver<Frame>,
    first: Result<Frame, RecvError>,
    sequence: &mut u64,
) -> Result<(), End> {
    let mut frame = first;
    let mut written = 0;
    let ended = loop {
        match text_of(frame, sequence) {
            Ok(Some(text)) => {
                if socket.feed(Message::Text(text.into())).await.is_err() {
                    break Some(End::Abort);
                }
            }
            Ok(None) => {}
            Err(end) => break Some(end),
        }
        written += 1;
        if written == FRAMES_PER_FLUSH {
            break None;
        }
        frame = match frames.try_recv() {
            Ok(frame) => Ok(frame),
            Err(TryRecvError::Empty) => break None,
            Err(TryRecvError::Lagged(lost)) => Err(RecvError::Lagged(lost)),
            Err(TryRecvError::Closed) => Err(RecvError::Closed),
        };
    };
    if socket.flush().await.is_err() {
        return Err(End::Abort);
    }
    ended.map_or(Ok(()), Err)
}

/// The text of one bus message for this socket, numbered; `None` for nothing to send.
fn text_of(frame: Result<Frame, RecvError>, sequence: &mut u64) -> Result<Option<String>, End> {
    match frame {
        Ok(Frame::Event {
            event_type,
            entity,
            attached_data,
        }) => {
            *sequence += 1;
            Ok(Some(
                json!({
                    "sequence": *sequence,
                    "event": {"event_type": event_type, "entity": entity, "attached_data": attached_data},
                })
                .to_string(),
            ))
        }
        Ok(Frame::Raw(text)) => {
            *sequence += 1;
            Ok(Some(text))
        }
        Ok(Frame::SkipSequence) => {
            *sequence += 1;
            Ok(None)
        }
        Ok(Frame::Close) | Err(RecvError::Closed) => Err(End::Close),
        // Dropping the socket ends the TCP connection without a close frame.
        Ok(Frame::Abort) => Err(End::Abort),
        Err(RecvError::Lagged(lost)) => {
            // Frames this socket could not keep up with are lost: show the gap.
            *sequence += lost;
            Ok(None)
        }
    }
}
