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
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

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
                let text = match frame {
                    Ok(Frame::Event { event_type, entity, attached_data }) => {
                        sequence += 1;
                        json!({
                            "sequence": sequence,
                            "event": {"event_type": event_type, "entity": entity, "attached_data": attached_data},
                        })
                        .to_string()
                    }
                    Ok(Frame::Raw(text)) => {
                        sequence += 1;
                        text
                    }
                    Ok(Frame::SkipSequence) => {
                        sequence += 1;
                        continue;
                    }
                    Ok(Frame::Close) | Err(RecvError::Closed) => {
                        let _ = socket.send(Message::Close(None)).await;
                        break;
                    }
                    // Dropping the socket ends the TCP connection without a close frame.
                    Ok(Frame::Abort) => break,
                    Err(RecvError::Lagged(lost)) => {
                        // Frames this socket could not keep up with are lost: show the gap.
                        sequence += lost;
                        continue;
                    }
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
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
