//! The `FastCgiLogpath` audit log: one JSON line per key operation, never key material.

use std::fs::File;
use std::io::Write;
use std::path::Path;

/// An append-only audit log, opened by the parent (as root) and inherited by the children.
#[derive(Debug)]
pub struct AuditLog {
    file: File,
}

/// One key operation.
pub struct Entry<'a> {
    /// `encrypt` or `decrypt`.
    pub op: &'a str,
    /// The client address.
    pub client_ip: &'a str,
    /// The request URI.
    pub uri: &'a str,
    /// The key scope (client id at the key servers).
    pub scope: &'a str,
    /// The data key version used, when known.
    pub version: Option<u32>,
    /// The cipher of the object.
    pub cipher: Option<&'a str>,
    /// `Err(message)` when the key could not be had.
    pub result: Result<(), String>,
}

impl AuditLog {
    /// Opens (creates) the log for appending, mode 0640.
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(path)?;
        Ok(AuditLog { file })
    }

    /// Appends one line (one `write`, so lines from several processes never interleave).
    pub fn write(&self, e: &Entry<'_>) {
        let time = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut v = serde_json::json!({
            "time": time,
            "op": e.op,
            "client_ip": e.client_ip,
            "uri": e.uri,
            "key_scope": e.scope,
            "key_version": e.version,
            "cipher": e.cipher,
            "result": if e.result.is_ok() { "ok" } else { "error" },
        });
        if let Err(msg) = &e.result {
            v["error"] = serde_json::Value::String(msg.clone());
        }
        let mut line = v.to_string();
        line.push('\n');
        if let Err(err) = (&self.file).write_all(line.as_bytes()) {
            tracing::warn!("FastCgiLogpath: writing the audit log failed: {err}");
        }
    }
}
