//! Small files of the state directory, replaced whole: written to a temporary file, synced,
//! renamed over the old one, and the directory synced, so a crash leaves the old or the new.

use std::{fs, io::Write, path::Path};

use anyhow::{Context, Result};

/// Replaces `state_dir/name` with `bytes`, atomically and durably.
pub fn replace(state_dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path = state_dir.join(name);
    fs::create_dir_all(state_dir).with_context(|| format!("creating {}", state_dir.display()))?;
    let tmp = path.with_extension("tmp");
    let mut f = crate::store::open_private(&tmp, fs::OpenOptions::new().create(true).write(true).truncate(true))
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(bytes).with_context(|| format!("writing {}", tmp.display()))?;
    f.sync_all()?;
    fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
    fs::File::open(state_dir)?.sync_all()?;
    Ok(())
}
