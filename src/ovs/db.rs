//! The OVSDB management protocol (RFC 7047) over JSON-RPC: transactions and the data
//! notation (atoms, `["set", ...]`, `["map", ...]`, `["uuid", ...]`, `["named-uuid", ...]`).

use std::fmt;
use std::path::Path;

use serde_json::{json, Map, Value};

use super::jsonrpc::{Connection, RpcError};

/// The Open vSwitch database.
pub const VSWITCH_DB: &str = "Open_vSwitch";

/// A failed OVSDB request.
#[derive(Debug)]
pub enum DbError {
    Rpc(RpcError),
    /// An operation of a transaction failed (RFC 7047 5.2: the whole transaction was aborted).
    Op {
        index: usize,
        op: String,
        error: String,
        details: String,
    },
    /// The reply did not have the expected shape.
    Reply(String),
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Rpc(e) => write!(f, "{e}"),
            DbError::Op { op, error, details, .. } => {
                write!(f, "OVSDB {op} failed: {error}")?;
                if !details.is_empty() {
                    write!(f, " ({details})")?;
                }
                Ok(())
            }
            DbError::Reply(s) => write!(f, "unexpected OVSDB reply: {s}"),
        }
    }
}

impl std::error::Error for DbError {}

impl From<RpcError> for DbError {
    fn from(e: RpcError) -> Self {
        DbError::Rpc(e)
    }
}

impl From<std::io::Error> for DbError {
    fn from(e: std::io::Error) -> Self {
        DbError::Rpc(RpcError::Io(e))
    }
}

/// A connection to one database of an ovsdb-server.
pub struct Client {
    conn: Connection,
    db: String,
}

/// One row as the server returns it: column -> datum.
pub type Row = Map<String, Value>;

impl Client {
    /// Connects to the Open_vSwitch database behind a unix socket (`db.sock`).
    pub fn connect(socket: &Path) -> Result<Client, DbError> {
        Ok(Client { conn: Connection::connect(socket)?, db: VSWITCH_DB.to_string() })
    }

    /// Runs the operations as one transaction; returns one result per operation. The first
    /// failing operation's error is returned (the server aborted them all).
    pub fn transact(&mut self, ops: Vec<Value>) -> Result<Vec<Value>, DbError> {
        let mut params = vec![json!(self.db)];
        let names: Vec<String> = ops.iter().map(|o| o["op"].as_str().unwrap_or("?").to_string()).collect();
        params.extend(ops);
        let r = self.conn.call("transact", Value::Array(params))?;
        let Value::Array(results) = r else {
            return Err(DbError::Reply(r.to_string()));
        };
        for (i, res) in results.iter().enumerate() {
            if let Some(e) = res.get("error").and_then(Value::as_str) {
                let op = match names.get(i) {
                    Some(n) => format!("{n} (operation {} of the transaction)", i + 1),
                    None => "commit".to_string(),
                };
                let details = res.get("details").and_then(Value::as_str).unwrap_or_default().to_string();
                return Err(DbError::Op { index: i, op, error: e.to_string(), details });
            }
        }
        Ok(results)
    }

    /// The rows of `table` matching `conditions` (RFC 7047 5.1 conditions), with `columns`.
    pub fn select(&mut self, table: &str, conditions: Vec<Value>, columns: &[&str]) -> Result<Vec<Row>, DbError> {
        let r = self.transact(vec![select(table, conditions, columns)])?;
        rows_of(&r[0])
    }

    /// The databases the server holds.
    pub fn list_dbs(&mut self) -> Result<Vec<String>, DbError> {
        let r = self.conn.call("list_dbs", json!([]))?;
        Ok(r.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect())
    }
}

/// The `rows` of a select result.
pub fn rows_of(result: &Value) -> Result<Vec<Row>, DbError> {
    match result.get("rows") {
        Some(Value::Array(rows)) => Ok(rows.iter().filter_map(|r| r.as_object().cloned()).collect()),
        _ => Err(DbError::Reply(format!("no rows in {result}"))),
    }
}

// ---- operations (RFC 7047 5.2) ----

pub fn select(table: &str, conditions: Vec<Value>, columns: &[&str]) -> Value {
    json!({ "op": "select", "table": table, "where": conditions, "columns": columns })
}

/// Inserts a row; `uuid_name` lets later operations of the transaction refer to it.
pub fn insert(table: &str, row: Value, uuid_name: &str) -> Value {
    json!({ "op": "insert", "table": table, "row": row, "uuid-name": uuid_name })
}

pub fn update(table: &str, conditions: Vec<Value>, row: Value) -> Value {
    json!({ "op": "update", "table": table, "where": conditions, "row": row })
}

pub fn mutate(table: &str, conditions: Vec<Value>, mutations: Vec<Value>) -> Value {
    json!({ "op": "mutate", "table": table, "where": conditions, "mutations": mutations })
}

pub fn delete(table: &str, conditions: Vec<Value>) -> Value {
    json!({ "op": "delete", "table": table, "where": conditions })
}

/// Blocks the transaction until the rows matching `conditions` (their `columns`) equal
/// `rows` (or differ from them), for at most `timeout_ms`; then the transaction fails.
pub fn wait(table: &str, conditions: Vec<Value>, columns: &[&str], until_equal: bool, rows: Vec<Value>, timeout_ms: u64) -> Value {
    json!({
        "op": "wait", "table": table, "where": conditions, "columns": columns,
        "until": if until_equal { "==" } else { "!=" }, "rows": rows, "timeout": timeout_ms,
    })
}

pub fn comment(text: &str) -> Value {
    json!({ "op": "comment", "comment": text })
}

// ---- conditions and mutations ----

pub fn cond(column: &str, function: &str, value: Value) -> Value {
    json!([column, function, value])
}

/// `column == value`.
pub fn eq(column: &str, value: Value) -> Value {
    cond(column, "==", value)
}

/// `_uuid == uuid`.
pub fn is_uuid(id: &str) -> Value {
    eq("_uuid", uuid(id))
}

pub fn mutation(column: &str, mutator: &str, value: Value) -> Value {
    json!([column, mutator, value])
}

// ---- data notation ----

pub fn uuid(id: &str) -> Value {
    json!(["uuid", id])
}

pub fn named_uuid(name: &str) -> Value {
    json!(["named-uuid", name])
}

pub fn set(items: Vec<Value>) -> Value {
    json!(["set", items])
}

pub fn map<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Value {
    let pairs: Vec<Value> = pairs.into_iter().map(|(k, v)| json!([k.into(), v.into()])).collect();
    json!(["map", pairs])
}

/// The elements of a set datum (a bare atom is a set of one).
pub fn set_items(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) if a.len() == 2 && a[0] == "set" => a[1].as_array().map(|x| x.iter().collect()).unwrap_or_default(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// The pairs of a map datum with string keys and values.
pub fn map_pairs(v: &Value) -> Vec<(String, String)> {
    match v {
        Value::Array(a) if a.len() == 2 && a[0] == "map" => {
            a[1].as_array().into_iter().flatten().filter_map(|p| Some((atom_string(p.get(0)?)?, atom_string(p.get(1)?)?))).collect()
        }
        _ => Vec::new(),
    }
}

/// The value of `key` in a map datum.
pub fn map_get(v: &Value, key: &str) -> Option<String> {
    map_pairs(v).into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn atom_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The id of a `["uuid", ID]` atom.
pub fn uuid_of(v: &Value) -> Option<&str> {
    match v {
        Value::Array(a) if a.len() == 2 && a[0] == "uuid" => a[1].as_str(),
        _ => None,
    }
}

/// The uuids in a set of references.
pub fn uuids(v: &Value) -> Vec<String> {
    set_items(v).into_iter().filter_map(uuid_of).map(str::to_string).collect()
}

/// An optional string column (a set of at most one string).
pub fn opt_str(v: Option<&Value>) -> Option<String> {
    v.and_then(|v| set_items(v).first().and_then(|a| a.as_str()).map(str::to_string))
}

/// An optional integer column.
pub fn opt_int(v: Option<&Value>) -> Option<i64> {
    v.and_then(|v| set_items(v).first().and_then(|a| a.as_i64()))
}

/// The integers of a set column.
pub fn ints(v: Option<&Value>) -> Vec<i64> {
    v.map(|v| set_items(v).into_iter().filter_map(Value::as_i64).collect()).unwrap_or_default()
}

/// An optional column from a value: the value itself, or the empty set.
pub fn optional(v: Option<Value>) -> Value {
    v.unwrap_or_else(|| set(Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_notation_round_trips() {
        assert_eq!(set_items(&json!(["set", [1, 2]])).len(), 2);
        assert_eq!(set_items(&json!("x")), vec![&json!("x")]);
        assert!(set_items(&json!(["set", []])).is_empty());
        assert_eq!(opt_str(Some(&json!(["set", []]))), None);
        assert_eq!(opt_str(Some(&json!("secure"))), Some("secure".into()));
        assert_eq!(opt_int(Some(&json!(10))), Some(10));
        assert_eq!(ints(Some(&json!(["set", [10, 20]]))), vec![10, 20]);
        let m = map([("vnet-lab", "a"), ("k", "v")]);
        assert_eq!(m, json!(["map", [["vnet-lab", "a"], ["k", "v"]]]));
        assert_eq!(map_get(&m, "vnet-lab").as_deref(), Some("a"));
        assert_eq!(map_get(&json!(["map", []]), "vnet-lab"), None);
        assert_eq!(uuid_of(&uuid("1-2")), Some("1-2"));
        assert_eq!(uuids(&json!(["set", [["uuid", "a"], ["uuid", "b"]]])), vec!["a", "b"]);
        assert_eq!(uuids(&json!(["uuid", "a"])), vec!["a"], "a set of one may be written as the bare atom");
        assert_eq!(named_uuid("p0"), json!(["named-uuid", "p0"]));
    }

    #[test]
    fn operations_have_the_rfc_shape() {
        assert_eq!(insert("Bridge", json!({"name": "b"}), "br"), json!({"op": "insert", "table": "Bridge", "row": {"name": "b"}, "uuid-name": "br"}));
        assert_eq!(
            mutate("Open_vSwitch", vec![], vec![mutation("next_cfg", "+=", json!(1))]),
            json!({"op": "mutate", "table": "Open_vSwitch", "where": [], "mutations": [["next_cfg", "+=", 1]]})
        );
        assert_eq!(
            wait("Bridge", vec![eq("name", json!("b"))], &["name"], true, vec![], 0),
            json!({"op": "wait", "table": "Bridge", "where": [["name", "==", "b"]], "columns": ["name"], "until": "==", "rows": [], "timeout": 0})
        );
        assert_eq!(is_uuid("u"), json!(["_uuid", "==", ["uuid", "u"]]));
    }
}
