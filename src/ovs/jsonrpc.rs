//! JSON-RPC 1.0 over a unix stream socket, as Open vSwitch speaks it (RFC 7047 section 4 for
//! ovsdb-server; the same framing for a daemon's unixctl control socket): one JSON object per
//! message, no delimiter, requests answered by `id`. The server may interleave its own
//! requests (`echo`, the inactivity probe), which are answered here.

use std::fmt;
use std::io::{self, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

/// How long a reply may take before the connection counts as dead (a transaction that waits
/// for ovs-vswitchd carries its own, shorter, timeout).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// A failed call.
#[derive(Debug)]
pub enum RpcError {
    /// The socket failed (cannot connect, closed, timed out).
    Io(io::Error),
    /// The server answered with an error object.
    Server(Value),
    /// The server sent something that is not JSON-RPC.
    Protocol(String),
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpcError::Io(e) => write!(f, "{e}"),
            RpcError::Server(v) => match v {
                Value::String(s) => write!(f, "{s}"),
                other => write!(f, "{other}"),
            },
            RpcError::Protocol(s) => write!(f, "protocol error: {s}"),
        }
    }
}

impl std::error::Error for RpcError {}

impl From<io::Error> for RpcError {
    fn from(e: io::Error) -> Self {
        RpcError::Io(e)
    }
}

/// One connection.
pub struct Connection {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    next_id: u64,
}

impl Connection {
    pub fn connect(path: &Path) -> io::Result<Connection> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(REPLY_TIMEOUT))?;
        s.set_write_timeout(Some(REPLY_TIMEOUT))?;
        Ok(Connection { reader: BufReader::new(s.try_clone()?), writer: s, next_id: 1 })
    }

    fn send(&mut self, v: &Value) -> io::Result<()> {
        let mut bytes = serde_json::to_vec(v).map_err(io::Error::other)?;
        bytes.push(b'\n');
        self.writer.write_all(&bytes)
    }

    fn receive(&mut self) -> Result<Value, RpcError> {
        let mut de = serde_json::Deserializer::from_reader(&mut self.reader);
        Value::deserialize(&mut de).map_err(|e| {
            if e.is_io() || e.is_eof() {
                RpcError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, format!("connection closed: {e}")))
            } else {
                RpcError::Protocol(e.to_string())
            }
        })
    }

    /// Calls `method` and returns its result; answers the server's own requests meanwhile.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, RpcError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({ "method": method, "params": params, "id": id }))?;
        loop {
            let msg = self.receive()?;
            let Some(obj) = msg.as_object() else {
                return Err(RpcError::Protocol(format!("not an object: {msg}")));
            };
            if let Some(m) = obj.get("method").and_then(Value::as_str) {
                // A request or notification from the server.
                if m == "echo" && obj.get("id").is_some_and(|i| !i.is_null()) {
                    let reply = json!({ "id": obj["id"], "result": obj.get("params").cloned().unwrap_or(json!([])), "error": null });
                    self.send(&reply)?;
                }
                continue;
            }
            if obj.get("id") != Some(&json!(id)) {
                continue; // a reply to nothing we are waiting for
            }
            return match obj.get("error") {
                Some(e) if !e.is_null() => Err(RpcError::Server(e.clone())),
                _ => Ok(obj.get("result").cloned().unwrap_or(Value::Null)),
            };
        }
    }
}

/// Sends one command to a daemon's unixctl socket (what `ovs-appctl -t SOCKET` does) and
/// returns its text.
pub fn unixctl(socket: &Path, command: &str, args: &[&str]) -> Result<String, RpcError> {
    let mut c = Connection::connect(socket)?;
    let r = c.call(command, json!(args))?;
    Ok(r.as_str().unwrap_or_default().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixListener;

    /// A server that answers each request with `reply(request)`, after sending an `echo`
    /// request of its own first (as ovsdb-server's inactivity probe does).
    fn serve(reply: impl Fn(&Value) -> Value + Send + 'static) -> (tempdir::Dir, std::thread::JoinHandle<Vec<Value>>) {
        let dir = tempdir::Dir::new();
        let path = dir.path().join("s.sock");
        let l = UnixListener::bind(&path).unwrap();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut seen = Vec::new();
            let mut reader = BufReader::new(s.try_clone().unwrap());
            s.write_all(br#"{"method":"echo","params":["probe"],"id":"echo"}"#).unwrap();
            loop {
                let mut de = serde_json::Deserializer::from_reader(&mut reader);
                let Ok(v) = Value::deserialize(&mut de) else {
                    break;
                };
                seen.push(v.clone());
                if v.get("method").is_some() {
                    let r = reply(&v);
                    s.write_all(serde_json::to_string(&r).unwrap().as_bytes()).unwrap();
                }
            }
            let mut rest = String::new();
            let _ = s.read_to_string(&mut rest);
            seen
        });
        (dir, h)
    }

    mod tempdir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!("vnet-rpc-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn answers_the_servers_echo_and_matches_replies_by_id() {
        let (dir, h) = serve(|req| json!({ "id": req["id"], "result": { "got": req["params"] }, "error": null }));
        let mut c = Connection::connect(&dir.path().join("s.sock")).unwrap();
        let r = c.call("list_dbs", json!([])).unwrap();
        assert_eq!(r, json!({ "got": [] }));
        let r = c.call("transact", json!(["Open_vSwitch", { "op": "comment", "comment": "x" }])).unwrap();
        assert_eq!(r["got"][1]["op"], "comment");
        drop(c);
        let seen = h.join().unwrap();
        // The echo was answered with the server's id and params; requests carry rising ids.
        assert!(seen.contains(&json!({ "id": "echo", "result": ["probe"], "error": null })), "{seen:?}");
        let calls: Vec<&Value> = seen.iter().filter(|v| v.get("method").is_some()).collect();
        assert_eq!((calls[0]["method"].as_str(), calls[0]["id"].as_u64()), (Some("list_dbs"), Some(1)));
        assert_eq!((calls[1]["method"].as_str(), calls[1]["id"].as_u64()), (Some("transact"), Some(2)));
    }

    #[test]
    fn server_errors_and_closed_connections_are_errors() {
        let (dir, h) = serve(|req| json!({ "id": req["id"], "result": null, "error": "unknown method" }));
        let mut c = Connection::connect(&dir.path().join("s.sock")).unwrap();
        match c.call("nope", json!([])) {
            Err(RpcError::Server(v)) => assert_eq!(v, json!("unknown method")),
            other => panic!("{other:?}"),
        }
        drop(c);
        h.join().unwrap();
        let (dir, h) = serve(|_| json!("not an object"));
        let mut c = Connection::connect(&dir.path().join("s.sock")).unwrap();
        assert!(matches!(c.call("x", json!([])), Err(RpcError::Protocol(_))));
        drop(c);
        h.join().unwrap();
    }

    #[test]
    fn connecting_to_nothing_fails() {
        let dir = tempdir::Dir::new();
        assert!(Connection::connect(&dir.path().join("none.sock")).is_err());
    }
}
