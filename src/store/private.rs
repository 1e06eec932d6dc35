//! Files that hold secrets (the store, the Matrix session and the Matrix SDK's stores) are
//! readable by the bot's user only, whatever the umask: directories are made 0700 and files
//! 0600 with explicit modes, and what an older sigbot left more open is tightened at start.
//! SQLite gives a database's `-wal`, `-shm` and `-journal` files the mode of the database
//! itself, so a database created 0600 keeps them 0600 too.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// The mode of a directory that holds secrets.
pub const DIR_MODE: u32 = 0o700;
/// The mode of a file that holds secrets.
pub const FILE_MODE: u32 = 0o600;

/// The files SQLite keeps beside a database.
const SQLITE_SIDE_FILES: &[&str] = &["-wal", "-shm", "-journal"];

/// Creates `dir` and any missing parent, each new one with mode 0700. An existing directory
/// keeps its mode (see [`make_private_dir`]).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Creates `dir` as [`create_private_dir`] does, and makes it 0700 if it already existed:
/// for directories that hold nothing but the bot's secrets.
pub fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    create_private_dir(dir)?;
    set_mode(dir, DIR_MODE)
}

/// Creates the database file `path` with mode 0600 if it does not exist (so that SQLite opens
/// a file, and makes its side files, that no one else may read), and makes it and the side
/// files that exist 0600.
pub fn prepare_database(path: &Path) -> std::io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)?;
    make_private_database(path)
}

/// Makes the database `path` and the side files that exist 0600 (without creating any).
pub fn make_private_database(path: &Path) -> std::io::Result<()> {
    set_mode_if_exists(path, FILE_MODE)?;
    for suffix in SQLITE_SIDE_FILES {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        set_mode_if_exists(Path::new(&side), FILE_MODE)?;
    }
    Ok(())
}

/// Makes the file `path` 0600 if it exists.
pub fn make_private_file(path: &Path) -> std::io::Result<()> {
    set_mode_if_exists(path, FILE_MODE)
}

/// Makes every file directly in `dir` 0600 (the Matrix SDK's databases, which it creates
/// itself).
pub fn make_private_files_in(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            set_mode_if_exists(&entry.path(), FILE_MODE)?;
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.permissions().mode() & 0o7777 != mode {
        std::fs::set_permissions(path, Permissions::from_mode(mode))?;
    }
    Ok(())
}

fn set_mode_if_exists(path: &Path, mode: u32) -> std::io::Result<()> {
    match set_mode(path, mode) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The permission bits of `path`, for tests.
#[cfg(test)]
pub(crate) fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_directories_are_0700_and_only_private_ones_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        create_private_dir(&nested).unwrap();
        assert_eq!(mode_of(&dir.path().join("a")), 0o700);
        assert_eq!(mode_of(&nested), 0o700);
        std::fs::set_permissions(&nested, Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&nested).unwrap();
        assert_eq!(
            mode_of(&nested),
            0o755,
            "an existing directory keeps its mode"
        );
        make_private_dir(&nested).unwrap();
        assert_eq!(mode_of(&nested), 0o700);
    }

    #[test]
    fn a_database_and_its_side_files_are_0600_whatever_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        prepare_database(&db).unwrap();
        assert_eq!(mode_of(&db), 0o600);
        let wal = dir.path().join("x.db-wal");
        std::fs::write(&wal, "").unwrap();
        for p in [&db, &wal] {
            std::fs::set_permissions(p, Permissions::from_mode(0o644)).unwrap();
        }
        prepare_database(&db).unwrap();
        assert_eq!(mode_of(&db), 0o600);
        assert_eq!(mode_of(&wal), 0o600);
        assert!(!dir.path().join("x.db-shm").exists(), "nothing else made");
    }

    #[test]
    fn files_in_a_directory_are_made_0600_and_subdirectories_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("store.sqlite3");
        std::fs::write(&f, "").unwrap();
        std::fs::set_permissions(&f, Permissions::from_mode(0o644)).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::set_permissions(dir.path().join("sub"), Permissions::from_mode(0o755)).unwrap();
        make_private_files_in(dir.path()).unwrap();
        assert_eq!(mode_of(&f), 0o600);
        assert_eq!(mode_of(&dir.path().join("sub")), 0o755);
    }
}
