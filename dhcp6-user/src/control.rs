//! The control socket: newline-delimited JSON over a Unix socket that only root (or the
//! daemon's own user) may use. `dhcp6d show ...` is its client.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::UnixStream,
};

/// What a client may ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    Bindings,
    Statistics,
    Pools,
    /// Return declined (conflicting) addresses to the pool: one, or all.
    ClearConflicting {
        address: Option<std::net::Ipv6Addr>,
    },
    /// The relay's user entries.
    RelayUsers,
    /// The relay's servers: state and counters.
    RelayServers,
}

/// Errors of the control client.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot reach dhcp6d at {path}: {source} (is it running, and are you root?)")]
    Connect { path: String, source: std::io::Error },
    #[error("control socket I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("dhcp6d answered something that is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("dhcp6d refused: {0}")]
    Refused(String),
}

/// Sends one request and returns the daemon's JSON answer.
pub async fn ask(socket: &Path, request: Request) -> Result<Value, ControlError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| ControlError::Connect { path: socket.display().to_string(), source })?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(&request)?;
    line.push('\n');
    write.write_all(line.as_bytes()).await?;
    let mut answer = String::new();
    BufReader::new(read).read_line(&mut answer).await?;
    let value: Value = serde_json::from_str(&answer)?;
    if let Some(e) = value.get("error").and_then(Value::as_str) {
        return Err(ControlError::Refused(e.to_string()));
    }
    Ok(value)
}
