//! Text tables for `dhcp6d show`, from the control socket's JSON.

use std::fmt::Write;

use serde_json::Value;

use crate::control::Request;

fn field(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// The answer to `request` as an operator reads it.
pub fn render(request: Request, answer: &Value) -> String {
    let mut out = String::new();
    let rows = answer.as_array().cloned().unwrap_or_default();
    // Writing to a String cannot fail.
    match request {
        Request::Bindings => {
            let _ = writeln!(
                out,
                "{:<28} {:<6} {:<9} {:>8} {:<10} {:<9} Client DUID",
                "Prefix", "Type", "State", "Expires", "Interface", "IAID"
            );
            for b in &rows {
                let iaid = b["iaid"].as_u64().map_or("-".into(), |i| format!("{i:08x}"));
                let _ = writeln!(
                    out,
                    "{:<28} {:<6} {:<9} {:>8} {:<10} {:<9} {}",
                    field(b, "resource"),
                    field(b, "type"),
                    field(b, "state"),
                    field(b, "expires_in"),
                    field(b, "interface"),
                    iaid,
                    field(b, "duid")
                );
            }
        }
        Request::Statistics => {
            for (title, key) in [
                ("Messages received", "received"),
                ("Messages sent", "sent"),
                ("Packets dropped", "dropped"),
                ("XDP verdicts", "xdp"),
            ] {
                let Some(map) = answer[key].as_object() else { continue };
                let _ = writeln!(out, "{title}:");
                let total: u64 = map.values().filter_map(Value::as_u64).sum();
                for (k, v) in map {
                    let _ = writeln!(out, "    {k:<24} {v}");
                }
                let _ = writeln!(out, "    {:<24} {total}", "total");
            }
        }
        Request::RelayUsers => {
            let _ = writeln!(
                out,
                "{:<28} {:<6} {:>8} {:<10} {:<26} {:<18} {:<9} Client DUID",
                "Prefix", "Type", "Expires", "Interface", "Link-local", "MAC", "IAID"
            );
            for u in &rows {
                let iaid = u["iaid"].as_u64().map_or("-".into(), |i| format!("{i:08x}"));
                let _ = writeln!(
                    out,
                    "{:<28} {:<6} {:>8} {:<10} {:<26} {:<18} {:<9} {}",
                    field(u, "resource"),
                    field(u, "ia_type"),
                    field(u, "expires_in"),
                    field(u, "interface"),
                    field(u, "link_local"),
                    field(u, "mac"),
                    iaid,
                    field(u, "duid")
                );
            }
        }
        Request::RelayServers => {
            let _ = writeln!(
                out,
                "{:<12} {:<40} {:>6} {:<6} {:>10} {:>10} {:>10}",
                "Group", "Server", "Weight", "State", "sent", "answered", "timed-out"
            );
            for s in answer["servers"].as_array().cloned().unwrap_or_default() {
                let _ = writeln!(
                    out,
                    "{:<12} {:<40} {:>6} {:<6} {:>10} {:>10} {:>10}",
                    field(&s, "group"),
                    field(&s, "server"),
                    field(&s, "weight"),
                    field(&s, "state"),
                    field(&s, "sent"),
                    field(&s, "answered"),
                    field(&s, "timed_out")
                );
            }
            let _ = writeln!(
                out,
                "relayed up {}, down {}; dropped {}",
                answer["stats"]["forwarded"], answer["stats"]["replies_relayed"], answer["stats"]["dropped"]
            );
        }
        Request::ClearConflicting { .. } => {
            let _ = writeln!(out, "{answer}");
        }
        Request::Pools => {
            let _ = writeln!(
                out,
                "{:<22} {:<28} {:>10} {:>8} {:>8} {:>11} {:>12} assignable",
                "Subnet", "Pool", "total", "in-use", "expired", "conflicting", "unassignable"
            );
            for p in &rows {
                let _ = writeln!(
                    out,
                    "{:<22} {:<28} {:>10} {:>8} {:>8} {:>11} {:>12} {}",
                    field(p, "subnet"),
                    field(p, "pool"),
                    field(p, "total"),
                    field(p, "in_use"),
                    field(p, "expired"),
                    field(p, "conflicting"),
                    field(p, "unassignable"),
                    field(p, "assignable")
                );
            }
        }
    }
    out
}
