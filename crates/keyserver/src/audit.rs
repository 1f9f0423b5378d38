//! The audit log: one JSON object per line and per operation.
//!
//! ```json
//! {"time":"2026-01-02T03:04:05.678Z","account":"mod","operation":"data.get",
//!  "client":"alice","version":2,"master_key_id":1,"result":"ok","remote":"10.0.0.5:40112"}
//! ```
//!
//! Fields that do not apply are omitted. Key material, passwords and tokens
//! are never written: the event type has no field that could hold them.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

use crate::util::{rfc3339_millis, unix_now_millis};

/// One audited operation.
#[derive(Debug, Default, Serialize)]
pub struct AuditEvent<'a> {
    /// The account (for `auth`, the name that was tried; `cli` for the CLI).
    pub account: &'a str,
    /// `auth`, `master.get`, `master.rotate`, `master.wrap`, `data.get`,
    /// `data.create`, `data.rotate`, `init`, `user.add`, `user.remove`.
    pub operation: &'a str,
    /// The client scope, for data key operations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<&'a str>,
    /// The data key version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The master key id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_key_id: Option<u32>,
    /// `ok`, `created`, `denied`, `unauthorized`, `not_found`, `invalid`,
    /// `conflict` or `error`.
    pub result: &'a str,
    /// The account acted upon, for `user.add` and `user.remove`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<&'a str>,
    /// The peer address, for API calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    #[serde(flatten)]
    event: &'a AuditEvent<'a>,
}

/// An append-only audit log file (mode 0600 when created).
#[derive(Debug)]
pub struct AuditLog {
    file: Mutex<File>,
}

impl AuditLog {
    /// Opens `path` for appending, creating it if needed.
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        Ok(AuditLog {
            file: Mutex::new(file),
        })
    }

    /// Appends one line and flushes it. An error means the operation must
    /// not be reported as done (the API fails closed with a 500).
    pub fn record(&self, event: &AuditEvent<'_>) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(&Line {
            time: rfc3339_millis(unix_now_millis()),
            event,
        })
        .map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        f.write_all(&line)?;
        f.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json() {
        let dir = std::env::temp_dir().join(format!("bks-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("audit.log");
        let _ = std::fs::remove_file(&p);
        let log = AuditLog::open(&p).unwrap();
        log.record(&AuditEvent {
            account: "mod\"x",
            operation: "data.get",
            client: Some("alice"),
            version: Some(2),
            master_key_id: Some(1),
            result: "ok",
            subject: None,
            remote: None,
        })
        .unwrap();
        log.record(&AuditEvent {
            account: "a",
            operation: "auth",
            result: "unauthorized",
            ..Default::default()
        })
        .unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["account"], "mod\"x");
        assert_eq!(lines[0]["version"], 2);
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
        assert!(lines[1].get("client").is_none());
    }
}
