//! One running bot per data directory: two would deliver the same outbox rows twice and
//! write over each other's meeting files. The lock is an exclusive advisory lock on
//! `data_dir/sigbot.lock`, which holds the owner's PID; the kernel drops it when the process
//! ends, however it ends.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Held for as long as the bot runs.
#[derive(Debug)]
pub(super) struct DataDirLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("data_dir {} is used by sigbot pid {pid}", dir.display())]
    InUse { dir: PathBuf, pid: String },
    #[error("data directory {}: cannot create it: {source}", dir.display())]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("data_dir {}: cannot lock {}: {source}", dir.display(), FILE)]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
}

const FILE: &str = "sigbot.lock";

/// Takes the data directory's lock (creating the directory if needed), or says who has it.
pub(super) fn lock_data_dir(dir: &Path) -> Result<DataDirLock, LockError> {
    let io = |source| LockError::Io {
        dir: dir.to_owned(),
        source,
    };
    // A new data directory is the bot's alone (DESIGN §5).
    crate::store::private::create_private_dir(dir).map_err(|source| LockError::CreateDir {
        dir: dir.to_owned(),
        source,
    })?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(FILE))
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut pid = String::new();
            // The owner writes its PID right after locking; an empty file means "just now".
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(LockError::InUse {
                dir: dir.to_owned(),
                pid: if pid.is_empty() {
                    "unknown".into()
                } else {
                    pid.to_owned()
                },
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(DataDirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_directory_names_the_first_owner() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = lock_data_dir(&data).unwrap();
        let err = lock_data_dir(&data).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "data_dir {} is used by sigbot pid {}",
                data.display(),
                std::process::id()
            )
        );
        drop(first);
        lock_data_dir(&data).expect("free again once the first is dropped");
    }
}
