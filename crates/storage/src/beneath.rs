//! Every file operation of the storage, resolved beneath the download directory without ever
//! following a symbolic link.
//!
//! A link already in the download directory (from an unpacked archive, another program, an
//! earlier job) would otherwise send a torrent's writes, truncations and deletions wherever it
//! points. So paths are resolved relative to a descriptor of the download directory: with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` where the kernel has it (Linux 5.6+), and
//! otherwise one `openat(O_NOFOLLOW | O_DIRECTORY)` per component, creating missing directories
//! with `mkdirat` on the way. The download directory itself is the user's choice and may be a
//! link. Files are opened `O_NONBLOCK` (a FIFO cannot hang us) and must be regular files.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::StorageError;

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);
/// Directories and files are created as `create_dir_all` and `File::create` would: the umask
/// decides.
const DIR_MODE: u32 = 0o777;
const FILE_MODE: u32 = 0o666;

/// How a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read only; the file must exist.
    Read,
    /// Read and write, created (with its parent directories) if missing, never truncated.
    ReadWrite,
}

impl Access {
    fn flags(self) -> OFlags {
        let base = OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        match self {
            Access::Read => base | OFlags::RDONLY,
            Access::ReadWrite => base | OFlags::RDWR | OFlags::CREATE,
        }
    }

    fn creates(self) -> bool {
        self != Access::Read
    }
}

/// The download directory, open, and the operations beneath it.
#[derive(Debug)]
pub(crate) struct Beneath {
    dir: OwnedFd,
    path: PathBuf,
    /// Whether `openat2` is worth trying: cleared after ENOSYS, or by tests to force the walk.
    openat2: AtomicBool,
}

impl Beneath {
    /// Opens `download_dir`, creating it first if `create` is set.
    pub(crate) fn open(download_dir: &Path, create: bool) -> Result<Self, StorageError> {
        if create {
            std::fs::create_dir_all(download_dir)
                .map_err(|e| StorageError::from_io(e, download_dir, "create directory"))?;
        }
        let dir = rustix::fs::open(
            download_dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| StorageError::from_io(e.into(), download_dir, "open"))?;
        Ok(Self {
            dir,
            path: download_dir.to_path_buf(),
            openat2: AtomicBool::new(true),
        })
    }

    /// Whether `dir` (created if missing) is still the directory this was opened at: not
    /// removed, renamed or replaced since.
    pub(crate) fn is_still_at(&self, dir: &Path) -> bool {
        let _ = std::fs::create_dir_all(dir);
        match (rustix::fs::stat(dir), rustix::fs::fstat(&self.dir)) {
            (Ok(now), Ok(open)) => now.st_dev == open.st_dev && now.st_ino == open.st_ino,
            _ => false,
        }
    }

    /// Resolves every path with the `openat` walk alone, as on kernels without `openat2`.
    #[cfg(test)]
    pub(crate) fn without_openat2(self) -> Self {
        self.openat2.store(false, Ordering::Relaxed);
        self
    }

    /// Opens the file at `rel` (relative to the download directory) as `access` says; it must
    /// be a regular file.
    pub(crate) fn open_file(&self, rel: &Path, access: Access) -> Result<File, StorageError> {
        let full = self.path.join(rel);
        let (parent, name) =
            split(rel).ok_or_else(|| StorageError::NotAFile { path: full.clone() })?;
        // openat2 refuses a mode without O_CREAT.
        let mode = if access.creates() {
            Mode::from_raw_mode(FILE_MODE)
        } else {
            Mode::empty()
        };
        let fd = match self.try_openat2(rel, access.flags(), mode) {
            Some(Ok(fd)) => fd,
            Some(Err(error)) if !falls_back(error, access.creates()) => {
                return Err(StorageError::from_io(error.into(), full, "open"));
            }
            _ => {
                let parent = self.walk(parent, access.creates())?;
                rustix::fs::openat(&parent, name, access.flags(), mode)
                    .map_err(|e| link_or_io(parent.as_fd(), name, e, &full, "open"))?
            }
        };
        regular_blocking(fd, &full)
    }

    /// Opens the directory at `rel`, creating it and its parents if `create` is set.
    pub(crate) fn open_dir(&self, rel: &Path, create: bool) -> Result<OwnedFd, StorageError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if rel.as_os_str().is_empty() {
            // openat2 refuses an empty path; the walk of no components opens the root.
            return self.walk(Vec::new(), false);
        }
        match self.try_openat2(rel, flags, Mode::empty()) {
            Some(Ok(fd)) => Ok(fd),
            Some(Err(error)) if !falls_back(error, create) => Err(StorageError::from_io(
                error.into(),
                self.path.join(rel),
                "open directory",
            )),
            _ => self.walk(components(rel).ok_or_else(|| self.not_a_file(rel))?, create),
        }
    }

    /// Replaces (or creates) the file `name` in the directory `dir` (created if missing) with
    /// `bytes`, atomically: a temporary file, synced, renamed over the old one, and the directory
    /// synced. Every step is relative to the directory's descriptor and follows no link; on an
    /// error the old file stays as it was.
    pub(crate) fn replace_file(
        &self,
        dir: &Path,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), StorageError> {
        let dir_path = self.path.join(dir);
        let path = dir_path.join(name);
        let fd = self.open_dir(dir, true)?;
        let temp_name = format!("{name}.tmp");
        let temp = dir_path.join(&temp_name);
        let io = |e: Errno, op| StorageError::from_io(e.into(), &temp, op);
        // A temporary file left by a crash goes first; unlinkat removes a link, never its target.
        match rustix::fs::unlinkat(&fd, &temp_name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(io(e, "remove stale")),
        }
        let written = rustix::fs::openat(
            &fd,
            &temp_name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        )
        .map_err(|e| io(e, "create"))
        .and_then(|created| {
            let mut file = File::from(created);
            file.write_all(bytes)
                .map_err(|e| StorageError::from_io(e, &temp, "write"))?;
            file.sync_all()
                .map_err(|e| StorageError::from_io(e, &temp, "sync"))
        });
        if let Err(error) = written {
            // A half-written temporary file would only hold space a full disk needs back.
            let _ = rustix::fs::unlinkat(&fd, &temp_name, AtFlags::empty());
            return Err(error);
        }
        rustix::fs::renameat(&fd, &temp_name, &fd, name)
            .map_err(|e| StorageError::from_io(e.into(), &path, "rename"))?;
        rustix::fs::fsync(&fd).map_err(|e| StorageError::from_io(e.into(), &dir_path, "sync"))
    }

    /// The metadata of the entry at `rel`, not following it if it is a link.
    pub(crate) fn stat(&self, rel: &Path) -> Result<rustix::fs::Stat, StorageError> {
        let full = self.path.join(rel);
        let (parent, name) = split(rel).ok_or_else(|| self.not_a_file(rel))?;
        let parent = self.open_dir(&parent.iter().collect::<PathBuf>(), false)?;
        rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| StorageError::from_io(e.into(), full, "stat"))
    }

    /// Deletes the regular file at `rel`; a missing file is fine, anything else standing there
    /// (a link, a directory) is left alone and reported.
    pub(crate) fn remove_file(&self, rel: &Path) -> Result<(), StorageError> {
        let full = self.path.join(rel);
        let (parent, name) = split(rel).ok_or_else(|| self.not_a_file(rel))?;
        let parent = match self.open_dir(&parent.iter().collect::<PathBuf>(), false) {
            Err(error) if is_not_found(&error) => return Ok(()),
            other => other?,
        };
        match rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(StorageError::from_io(e.into(), full, "stat")),
            Ok(stat) => match FileType::from_raw_mode(stat.st_mode) {
                FileType::RegularFile => {}
                FileType::Symlink => return Err(StorageError::Symlink { path: full }),
                _ => return Err(StorageError::NotAFile { path: full }),
            },
        }
        match rustix::fs::unlinkat(&parent, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(StorageError::from_io(e.into(), full, "delete")),
        }
    }

    /// Removes the directory at `rel` if it is empty (and a directory, not a link); best effort.
    pub(crate) fn remove_empty_dir(&self, rel: &Path) {
        if let Some((parent, name)) = split(rel)
            && let Ok(parent) = self.open_dir(&parent.iter().collect::<PathBuf>(), false)
        {
            let _ = rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR);
        }
    }

    /// `openat2` of `rel` unless it is known to be missing; `None` when it is not tried.
    fn try_openat2(&self, rel: &Path, flags: OFlags, mode: Mode) -> Option<Result<OwnedFd, Errno>> {
        if !self.openat2.load(Ordering::Relaxed) {
            return None;
        }
        let result = rustix::fs::openat2(&self.dir, rel, flags, mode, RESOLVE);
        if matches!(result, Err(Errno::NOSYS)) {
            self.openat2.store(false, Ordering::Relaxed);
        }
        Some(result)
    }

    /// Opens the directories `components` one by one below the download directory, never
    /// following a link, creating missing ones if `create` is set.
    fn walk(&self, components: Vec<&OsStr>, create: bool) -> Result<OwnedFd, StorageError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut at: Option<OwnedFd> = None;
        let mut so_far = self.path.clone();
        for name in components {
            so_far.push(name);
            let parent = at.as_ref().map_or(self.dir.as_fd(), AsFd::as_fd);
            let mut opened = rustix::fs::openat(parent, name, flags, Mode::empty());
            if create && matches!(opened, Err(Errno::NOENT)) {
                match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(DIR_MODE)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => {
                        return Err(StorageError::from_io(e.into(), so_far, "create directory"));
                    }
                }
                opened = rustix::fs::openat(parent, name, flags, Mode::empty());
            }
            let opened =
                opened.map_err(|e| link_or_io(parent, name, e, &so_far, "open directory"))?;
            at = Some(opened);
        }
        match at {
            Some(fd) => Ok(fd),
            None => rustix::fs::openat(&self.dir, ".", flags, Mode::empty())
                .map_err(|e| StorageError::from_io(e.into(), &self.path, "open directory")),
        }
    }

    fn not_a_file(&self, rel: &Path) -> StorageError {
        StorageError::NotAFile {
            path: self.path.join(rel),
        }
    }
}

/// Whether an `openat2` failure should be retried with the walk: the kernel lacks it (ENOSYS,
/// or EPERM from a seccomp filter; a real EPERM comes back from the walk too), a link or an
/// escape may be in the way (the walk names the exact link), or a directory to be created is
/// missing.
fn falls_back(error: Errno, create: bool) -> bool {
    matches!(
        error,
        Errno::NOSYS | Errno::PERM | Errno::LOOP | Errno::XDEV | Errno::NOTDIR | Errno::EXIST
    ) || (create && error == Errno::NOENT)
}

/// Whether `error` says the path does not exist.
pub(crate) fn is_not_found(error: &StorageError) -> bool {
    matches!(error, StorageError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

/// The error for failing to open `name` in `parent`: [`StorageError::Symlink`] if a link stands
/// there (O_NOFOLLOW gives ELOOP, ENOTDIR with O_DIRECTORY, EEXIST with O_EXCL), else the I/O
/// error.
fn link_or_io(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    error: Errno,
    path: &Path,
    op: &'static str,
) -> StorageError {
    let is_link = matches!(error, Errno::LOOP | Errno::NOTDIR | Errno::EXIST)
        && rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|stat| FileType::from_raw_mode(stat.st_mode) == FileType::Symlink);
    if is_link {
        StorageError::Symlink {
            path: path.to_path_buf(),
        }
    } else {
        StorageError::from_io(error.into(), path, op)
    }
}

/// Checks `fd` is a regular file and makes its I/O blocking again (`O_NONBLOCK` was only there
/// so that opening a FIFO returns at once; io_uring would honour it on reads).
fn regular_blocking(fd: OwnedFd, path: &Path) -> Result<File, StorageError> {
    let stat = rustix::fs::fstat(&fd).map_err(|e| StorageError::from_io(e.into(), path, "stat"))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(StorageError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let flags = rustix::fs::fcntl_getfl(&fd)
        .and_then(|flags| rustix::fs::fcntl_setfl(&fd, flags - OFlags::NONBLOCK))
        .map_err(|e| StorageError::from_io(e.into(), path, "set blocking"));
    flags.map(|()| File::from(fd))
}

/// The components of a relative path; `None` if it has any other than plain names (the
/// metainfo parser already refuses those; this keeps the module safe on its own).
fn components(rel: &Path) -> Option<Vec<&OsStr>> {
    rel.components()
        .map(|c| match c {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .collect()
}

/// A relative path's parent directories and its last component.
fn split(rel: &Path) -> Option<(Vec<&OsStr>, &OsStr)> {
    let mut parts = components(rel)?;
    let name = parts.pop()?;
    Some((parts, name))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn both(dir: &Path) -> [Beneath; 2] {
        [
            Beneath::open(dir, false).unwrap(),
            Beneath::open(dir, false).unwrap().without_openat2(),
        ]
    }

    #[test]
    fn files_and_directories_are_created_beneath() {
        let dir = tempfile::tempdir().unwrap();
        for (i, root) in both(dir.path()).iter().enumerate() {
            let rel = PathBuf::from(format!("t{i}/a/b/file"));
            root.open_file(&rel, Access::ReadWrite).unwrap();
            assert!(dir.path().join(&rel).is_file());
            root.remove_file(&rel).unwrap();
            root.remove_file(&rel).unwrap();
            root.remove_empty_dir(Path::new(&format!("t{i}/a/b")));
            assert!(!dir.path().join(format!("t{i}/a/b")).exists());
        }
    }

    #[test]
    fn every_operation_refuses_a_link_and_names_it() {
        let (dir, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(outside.path().join("f"), b"x").unwrap();
        symlink(outside.path(), dir.path().join("d")).unwrap();
        symlink(outside.path().join("f"), dir.path().join("f")).unwrap();
        symlink(outside.path().join("new"), dir.path().join("dangling")).unwrap();
        let symlink_at = |error: StorageError, rel: &str| {
            assert!(
                matches!(&error, StorageError::Symlink { path } if *path == dir.path().join(rel)),
                "{rel}: {error:?}"
            );
        };
        for root in both(dir.path()) {
            for access in [Access::Read, Access::ReadWrite] {
                symlink_at(root.open_file(Path::new("d/f"), access).unwrap_err(), "d");
                symlink_at(root.open_file(Path::new("d/x/y"), access).unwrap_err(), "d");
                symlink_at(
                    root.open_file(Path::new("dangling"), access).unwrap_err(),
                    "dangling",
                );
                symlink_at(root.open_file(Path::new("f"), access).unwrap_err(), "f");
            }
            symlink_at(root.open_dir(Path::new("d/sub"), true).unwrap_err(), "d");
            symlink_at(root.remove_file(Path::new("d/f")).unwrap_err(), "d");
            symlink_at(root.remove_file(Path::new("f")).unwrap_err(), "f");
            root.remove_empty_dir(Path::new("d"));
            assert!(root.stat(Path::new("d/f")).is_err());
        }
        assert!(!outside.path().join("new").exists());
        assert!(!outside.path().join("x").exists());
        assert!(!outside.path().join("sub").exists());
        assert_eq!(std::fs::read(outside.path().join("f")).unwrap(), b"x");
        assert!(dir.path().join("d").is_symlink());
    }

    #[test]
    fn a_fifo_is_not_a_file_and_does_not_hang() {
        let dir = tempfile::tempdir().unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            dir.path().join("fifo"),
            Mode::from_raw_mode(0o600),
        )
        .unwrap();
        for root in both(dir.path()) {
            let error = root.open_file(Path::new("fifo"), Access::Read).unwrap_err();
            assert!(matches!(error, StorageError::NotAFile { .. }), "{error:?}");
        }
    }
}
