//! The server's DUID: generated once (DUID-LLT from an interface's MAC, RFC 9915 section
//! 11.2), kept in the state directory, and read back on every start.

use std::{
    fs,
    path::Path,
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context, Result};

use crate::{
    codec::{parse_hex, Duid},
    json,
};

/// Seconds from the Unix epoch to 2000-01-01 UTC, the epoch of DUID-LLT times.
const DUID_EPOCH: u64 = 946_684_800;

/// Reads `state_dir/server-duid`, or makes one from the MAC of `interface` and writes it.
pub fn load_or_create(state_dir: &Path, interface: Option<&str>) -> Result<Vec<u8>> {
    let path = state_dir.join("server-duid");
    if let Ok(text) = fs::read_to_string(&path) {
        let duid = parse_hex(text.trim()).with_context(|| format!("{} is not hex", path.display()))?;
        if Duid::new(&duid).is_err() {
            bail!("{} does not hold a valid DUID", path.display());
        }
        return Ok(duid);
    }
    let mac = interface
        .and_then(|i| fs::read_to_string(format!("/sys/class/net/{i}/address")).ok())
        .and_then(|m| parse_hex(m.trim()));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let duid = match mac {
        Some(mac) if mac.len() == 6 => {
            let time = (now.saturating_sub(DUID_EPOCH) & u64::from(u32::MAX)) as u32;
            [&[0u8, 1, 0, 1][..], &time.to_be_bytes(), &mac].concat()
        }
        // No MAC to build from: DUID-UUID (RFC 6355) from random bytes.
        _ => [&[0u8, 4][..], &rand::random::<[u8; 16]>()].concat(),
    };
    save(state_dir, &duid)?;
    Ok(duid)
}

/// Writes `duid` as the server's identity, atomically and durably.
pub fn save(state_dir: &Path, duid: &[u8]) -> Result<()> {
    super::state_file::replace(state_dir, "server-duid", format!("{}\n", json::hex(duid)).as_bytes())
}
