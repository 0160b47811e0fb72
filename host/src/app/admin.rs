//! The admin socket: how `callhook deliveries ...` acts on the queue of a running host.
//!
//! redb lets one process open the database, so while the host runs, the `deliveries` commands
//! ask it instead: over a Unix socket, `admin/socket` in the storage directory, never on the
//! network. The `admin` folder is the owner's only (mode 0700), so only the user the host runs
//! as (and root) can connect. One request per connection: a line of JSON ([`Request`]),
//! answered by a line of JSON ([`Response`]) whose text the command prints. A host that cannot
//! open the socket runs without it and says so.

use super::DeliveryQueue;
use crate::queue::cli_format::render_deliveries;
use crate::queue::{DeliveryFilter, QueueError};
use serde::{Deserialize, Serialize};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

/// The owner-only folder of the socket, in the storage directory.
const FOLDER: &str = "admin";
/// The socket's file name in [`FOLDER`].
const SOCKET: &str = "socket";
/// The longest request accepted, in bytes.
const MAX_REQUEST: u64 = 64 * 1024;
/// How long the host waits for a request.
const REQUEST_TIME: Duration = Duration::from_secs(5);
/// How long a command waits for the host's answer.
const ANSWER_TIME: Duration = Duration::from_secs(60);

/// Where the admin socket of a host with storage directory `storage` is.
pub fn socket_path(storage: &Path) -> PathBuf {
    storage.join(FOLDER).join(SOCKET)
}

/// What a `deliveries` command asks of the running host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// `deliveries list`.
    List {
        /// Which deliveries.
        filter: DeliveryFilter,
        /// With every attempt.
        history: bool,
    },
    /// `deliveries retry`: these ids, or (when `id` is `None`) every one `filter` selects.
    Retry {
        /// One delivery.
        id: Option<u64>,
        /// Which deliveries, without an id.
        filter: DeliveryFilter,
    },
    /// `deliveries enable-plugin`.
    EnablePlugin {
        /// The plugin.
        plugin: String,
    },
}

/// The host's answer: what to print, or why the request failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Done; print this.
    Done(String),
    /// Not done; this is why.
    Failed(String),
}

/// Serves the admin socket for `queue` until `cancel`, then removes the socket file. A stale
/// socket file (left by a host that was killed) is replaced.
pub fn serve(
    queue: Arc<DeliveryQueue>,
    storage: &Path,
    cancel: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let path = socket_path(storage);
    let folder = storage.join(FOLDER);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(&folder)?;
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o700))?;
    if std::fs::symlink_metadata(&path).is_ok() {
        std::fs::remove_file(&path)?;
    }
    let listener = UnixListener::bind(&path)?;
    Ok(tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = cancel.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        tracing::warn!(%error, "admin socket: accept failed");
                        continue;
                    }
                },
            };
            let queue = queue.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(REQUEST_TIME, answer(stream, &queue)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::warn!(%error, "admin socket: request failed"),
                    Err(_) => tracing::warn!("admin socket: no request within 5 s"),
                }
            });
        }
        let _ = std::fs::remove_file(&path);
    }))
}

/// Reads one request, carries it out and writes the response.
async fn answer(stream: UnixStream, queue: &DeliveryQueue) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST));
    reader.read_line(&mut line).await?;
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(request) => match carry_out(queue, request) {
            Ok(text) => Response::Done(text),
            Err(error) => Response::Failed(error.to_string()),
        },
        Err(error) => Response::Failed(format!("not a request: {error}")),
    };
    let mut out = serde_json::to_vec(&response)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    Ok(())
}

/// Acts on the running queue; returns the text to print. The console's actions go through
/// here too.
pub(crate) fn carry_out(queue: &DeliveryQueue, request: Request) -> Result<String, QueueError> {
    match request {
        Request::List { filter, history } => Ok(render_deliveries(&queue.list(&filter)?, history)),
        Request::Retry { id: Some(id), .. } => {
            queue.retry(id)?;
            Ok(format!("delivery {id} will be attempted again now\n"))
        }
        Request::Retry { id: None, filter } => {
            let ids: Vec<u64> = queue.list(&filter)?.iter().map(|d| d.id).collect();
            let retried = queue.retry_all(&ids)?;
            Ok(format!(
                "{} deliveries will be attempted again now\n",
                retried.len()
            ))
        }
        Request::EnablePlugin { plugin } => {
            queue.enable_plugin(&plugin)?;
            Ok(format!("plugin {plugin} receives deliveries again now\n"))
        }
    }
}

/// Sends `request` to the host listening at `socket`. `Ok(None)` when no host listens there
/// (no socket, or a stale one).
pub async fn send(socket: &Path, request: &Request) -> anyhow::Result<Option<Response>> {
    let stream = match UnixStream::connect(socket).await {
        Ok(stream) => stream,
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(error) => return Err(error.into()),
    };
    let exchange = async {
        let (read, mut write) = stream.into_split();
        let mut line = serde_json::to_vec(request)?;
        line.push(b'\n');
        write.write_all(&line).await?;
        let mut answer = String::new();
        BufReader::new(read).read_line(&mut answer).await?;
        anyhow::Ok(serde_json::from_str(&answer)?)
    };
    match tokio::time::timeout(ANSWER_TIME, exchange).await {
        Ok(answer) => answer.map(Some),
        Err(_) => anyhow::bail!("the running callhook did not answer within a minute"),
    }
}
