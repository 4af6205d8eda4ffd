//! A plain HTTP/1.1 client over `TcpStream`, enough for the metrics endpoint and Prometheus'
//! API: one request per connection, the whole answer read until the server closes.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

/// An answer: its status code, headers (names lower-cased) and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Sends `head` (the request line and headers, without the blank line that ends them) and
/// reads the answer. Err on a connection that fails or an answer that is not HTTP.
pub fn request(to: SocketAddr, head: &str) -> Result<Response, String> {
    let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(3)).map_err(|e| format!("{to}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let mut text = head.trim_end().to_string();
    text.push_str("\r\nConnection: close\r\n\r\n");
    stream.write_all(text.as_bytes()).map_err(|e| format!("writing to {to}: {e}"))?;
    let mut raw = Vec::new();
    // A server that answers before reading all of a large request resets the connection; what
    // it answered is still read.
    if let Err(e) = stream.read_to_end(&mut raw) {
        if raw.is_empty() {
            return Err(format!("reading from {to}: {e}"));
        }
    }
    parse(&String::from_utf8_lossy(&raw))
}

/// `GET path` with the headers in `headers` (each `Name: value`).
pub fn get(to: SocketAddr, path: &str, headers: &[&str]) -> Result<Response, String> {
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: {to}\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    request(to, &head)
}

fn parse(raw: &str) -> Result<Response, String> {
    let (head, body) = raw.split_once("\r\n\r\n").ok_or_else(|| format!("no end of headers in {raw:?}"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { unchunk(body)? } else { body.to_string() };
    Ok(Response { status, headers, body })
}

/// The body of a chunked answer.
fn unchunk(mut rest: &str) -> Result<String, String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").ok_or("a chunk without its size line")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or_default().trim(), 16)
            .map_err(|e| format!("chunk size {size:?}: {e}"))?;
        if size == 0 {
            return Ok(body);
        }
        let chunk = after.get(..size).ok_or("a chunk cut short")?;
        body.push_str(chunk);
        rest = after.get(size + 2..).ok_or("a chunk without its line end")?;
    }
}

/// `text` percent-encoded for a query string.
pub fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
