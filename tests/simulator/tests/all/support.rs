//! Helpers shared by the tests: a started simulator, a token, an event socket client.

use std::time::Duration;

use callhook_simulator::{SimConfig, SimHandle, Simulator};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for something that should happen at once.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub async fn start(config: SimConfig) -> SimHandle {
    Simulator::start(config).await.expect("simulator starts")
}

pub fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// Mints a token with the simulator's credentials (form-urlencoded).
pub async fn token(sim: &SimHandle) -> String {
    token_with(&http(), sim).await
}

pub async fn token_with(client: &reqwest::Client, sim: &SimHandle) -> String {
    let config = sim.config();
    let reply: Value = client
        .post(format!("{}/connect/token", sim.base_url()))
        .form(&[
            ("client_id", config.client_id.as_str()),
            ("client_secret", config.client_secret.as_str()),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token JSON");
    reply["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// `GET base_url + path` with the token.
pub async fn get(sim: &SimHandle, token: &str, path: &str) -> reqwest::Response {
    http()
        .get(format!("{}{path}", sim.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET")
}

/// `GET` expecting `200` and JSON.
pub async fn get_json(sim: &SimHandle, token: &str, path: &str) -> Value {
    let reply = get(sim, token, path).await;
    assert_eq!(reply.status(), 200, "GET {path}");
    reply.json().await.expect("JSON")
}

/// An event WebSocket client.
pub struct Events {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Events {
    /// Opens the socket with `token`; the upgrade's error (e.g. `401`) is returned as is.
    pub async fn connect(sim: &SimHandle, token: &str) -> Result<Events, tungstenite::Error> {
        let mut request = sim.ws_url().into_client_request()?;
        request.headers_mut().insert(
            "Authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Events { socket })
    }

    /// Opens the socket and waits until the simulator counts it.
    pub async fn open(sim: &SimHandle, token: &str) -> Events {
        let before = sim.sockets();
        let events = Events::connect(sim, token).await.expect("upgrade");
        tokio::time::timeout(PATIENCE, sim.wait_sockets(before + 1))
            .await
            .expect("socket counted");
        events
    }

    pub fn from_stream(socket: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Events {
        Events { socket }
    }

    /// The next message of any kind, or `None` when the socket closed.
    pub async fn next_message(&mut self) -> Option<Message> {
        tokio::time::timeout(PATIENCE, self.socket.next())
            .await
            .expect("a message in time")
            .and_then(Result::ok)
    }

    /// The next item of the stream as tungstenite reports it (an error for a connection that
    /// ended without a close frame), or `None` after the end.
    pub async fn next_raw(&mut self) -> Option<Result<Message, tungstenite::Error>> {
        tokio::time::timeout(PATIENCE, self.socket.next())
            .await
            .expect("a message in time")
    }

    /// The next text frame, skipping control frames; panics when the socket closes.
    pub async fn next_text(&mut self) -> String {
        loop {
            match self.next_message().await {
                Some(Message::Text(text)) => return text.to_string(),
                Some(Message::Close(_)) | None => panic!("socket closed while waiting for a frame"),
                Some(_) => {}
            }
        }
    }

    /// The next frame as JSON.
    pub async fn next_json(&mut self) -> Value {
        serde_json::from_str(&self.next_text().await).expect("frame is JSON")
    }

    /// Waits for the socket to be closed by the server.
    pub async fn closed(&mut self) {
        loop {
            match self.next_message().await {
                Some(Message::Close(_)) | None => return,
                Some(_) => {}
            }
        }
    }

    pub async fn send(&mut self, message: Message) {
        self.socket.send(message).await.expect("send");
    }

    /// Collects `n` event frames.
    pub async fn take(&mut self, n: usize) -> Vec<Value> {
        let mut frames = Vec::with_capacity(n);
        for _ in 0..n {
            frames.push(self.next_json().await);
        }
        frames
    }
}

/// `401` from an upgrade error.
pub fn upgrade_status(error: &tungstenite::Error) -> Option<u16> {
    match error {
        tungstenite::Error::Http(response) => Some(response.status().as_u16()),
        _ => None,
    }
}
