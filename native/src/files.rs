//! The local store's file system work: `resolve_under`, the check that a key, once the
//! directory's symbolic links are followed, stays under the store's directory; and `put`, an
//! object written whole, synced and linked into place.
//!
//! Python's `Path.resolve` asks the file system about each component as `os.path.realpath` does,
//! in Python: about 65 µs of CPU a put, a sixth of the whole put of a small object. The C
//! library's `realpath` (`std::fs::canonicalize`) makes the same system calls in a third of that.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// `root/key` with every symbolic link followed, as `Path(root).resolve() / key` resolved with
/// `strict=False`: the longest part that exists is resolved, the rest (names not made yet, which
/// cannot be links) appended as they are. `Err(Ok(path))` when that leaves `root` (resolved).
/// The key is checked already (relative, no `.` or `..` segments).
pub fn resolve_under(root: &Path, key: &str) -> Result<PathBuf, Result<PathBuf, io::Error>> {
    let base = std::fs::canonicalize(root).map_err(Err)?;
    let mut missing: Vec<std::ffi::OsString> = Vec::new(); // the innermost first
    let mut existing = base.join(key);
    let mut links = 0;
    // The new object's name (usually not there yet) costs one lstat; only what exists is
    // resolved, by one realpath (whose readlink of each component is most of a put's check).
    let resolved = loop {
        let is_link = match std::fs::symlink_metadata(&existing) {
            Ok(meta) => meta.file_type().is_symlink(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match (existing.file_name(), existing.parent()) {
                    (Some(name), Some(parent)) => {
                        missing.push(name.to_owned());
                        existing = parent.to_path_buf();
                        continue;
                    }
                    _ => return Err(Err(e)),
                }
            }
            Err(e) => return Err(Err(e)),
        };
        match std::fs::canonicalize(&existing) {
            Ok(p) => break p,
            // a link to nothing yet: realpath follows it all the same (Linux allows 40)
            Err(e) if is_link && e.kind() == io::ErrorKind::NotFound => {
                if links == 40 {
                    return Err(Err(io::Error::from_raw_os_error(40))); // ELOOP
                }
                links += 1;
                let target = std::fs::read_link(&existing).map_err(Err)?;
                existing = existing.parent().unwrap_or(&base).join(target);
            }
            Err(e) => return Err(Err(e)),
        }
    };
    let mut path = resolved;
    path.extend(missing.iter().rev());
    if path.starts_with(&base) {
        Ok(path)
    } else {
        Err(Ok(path))
    }
}

/// What stopped a [`put`]: the file system, or the hook before the sync.
pub enum PutError<E> {
    Io(io::Error),
    Hook(E),
}

/// `data` written to the new file `tmp` (never one that exists), made durable by `sync` (the
/// bytes and the size that reaches them; the name is the directory sync's, the caller's), then
/// linked as `target` if `if_absent` (false: the name is taken, nothing replaced) or renamed
/// over it. `tmp` is gone afterwards, whatever happened.
pub fn put<E>(
    target: &Path,
    tmp: &Path,
    data: &[u8],
    if_absent: bool,
    sync: impl FnOnce(&File) -> Result<(), PutError<E>>,
) -> Result<bool, PutError<E>> {
    let mut file = File::options()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(PutError::Io)?;
    let written = match file.write_all(data) {
        // a write that makes no progress is a full disk (as spool/disk.py's write_all says)
        Err(e) if e.kind() == io::ErrorKind::WriteZero => Err(PutError::Io(enospc())),
        other => other.map_err(PutError::Io),
    }
    .and_then(|()| sync(&file));
    drop(file);
    let linked = written.and_then(|()| {
        if if_absent {
            match std::fs::hard_link(tmp, target) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(PutError::Io(e)),
            }
        } else {
            std::fs::rename(tmp, target)
                .map(|()| true)
                .map_err(PutError::Io)
        }
    });
    if if_absent || linked.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    linked
}

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(28)
}

#[cfg(feature = "python")]
pub mod python {
    use pyo3::exceptions::PyOSError;
    use pyo3::prelude::*;
    use std::ffi::OsString;
    use std::os::fd::AsRawFd;
    use std::path::PathBuf;

    /// `(inside, path)`: [`super::resolve_under`] of a checked key; `inside` false when the path
    /// leaves `root`. An OSError (with its errno, as `os` raises them) when the file system
    /// cannot say.
    #[pyfunction]
    pub fn resolve_under(py: Python<'_>, root: PathBuf, key: &str) -> PyResult<(bool, OsString)> {
        match py.allow_threads(|| super::resolve_under(&root, key)) {
            Ok(path) => Ok((true, path.into_os_string())),
            Err(Ok(path)) => Ok((false, path.into_os_string())),
            Err(Err(e)) => Err(os_error(py, e, &root.join(key))),
        }
    }

    /// [`super::put`] without the GIL: a thread that took it back after each system call
    /// waited for a busy event loop every time. `fault("put.sync")` before the sync, and
    /// `sync(fd)` instead of the core's fdatasync, when given (tests).
    #[pyfunction]
    #[pyo3(signature = (target, tmp, data, if_absent, fault=None, sync=None))]
    pub fn put_file(
        py: Python<'_>,
        target: PathBuf,
        tmp: PathBuf,
        data: &[u8],
        if_absent: bool,
        fault: Option<Py<PyAny>>,
        sync: Option<Py<PyAny>>,
    ) -> PyResult<bool> {
        let hooked = fault.is_some() || sync.is_some();
        let result = py.allow_threads(|| {
            super::put(&target, &tmp, data, if_absent, |file| {
                if !hooked {
                    return file.sync_data().map_err(super::PutError::Io);
                }
                Python::with_gil(|py| {
                    if let Some(fault) = &fault {
                        fault.call1(py, ("put.sync",))?;
                    }
                    match &sync {
                        Some(sync) => sync.call1(py, (file.as_raw_fd(),)).map(drop),
                        None => file.sync_data().map_err(|e| os_error(py, e, &tmp)),
                    }
                })
                .map_err(super::PutError::Hook)
            })
        });
        match result {
            Ok(created) => Ok(created),
            Err(super::PutError::Hook(e)) => Err(e),
            Err(super::PutError::Io(e)) => Err(os_error(py, e, &target)),
        }
    }

    /// An OSError as `os` raises it: errno, strerror, the file name (so the subclass, e.g.
    /// FileNotFoundError, and `e.strerror` are what callers catch and print).
    fn os_error(py: Python<'_>, e: std::io::Error, path: &std::path::Path) -> PyErr {
        let Some(code) = e.raw_os_error() else {
            return PyOSError::new_err(e.to_string());
        };
        match py
            .import("os")
            .and_then(|os| os.call_method1("strerror", (code,)))
        {
            Ok(strerror) => PyOSError::new_err((code, strerror.unbind(), path.to_path_buf())),
            Err(err) => err,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("otlp-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("root/a")).unwrap();
        std::fs::create_dir_all(dir.join("outside")).unwrap();
        dir.canonicalize().unwrap()
    }

    #[test]
    fn names_not_made_yet_are_appended_and_links_inside_followed() {
        let dir = scratch("inside");
        let root = dir.join("root");
        symlink(root.join("a"), root.join("to-a")).unwrap();
        assert_eq!(
            resolve_under(&root, "a/b/c.json").unwrap(),
            root.join("a/b/c.json")
        );
        assert_eq!(
            resolve_under(&root, "to-a/c.json").unwrap(),
            root.join("a/c.json")
        );
        assert_eq!(
            resolve_under(&root, "new/c.json").unwrap(),
            root.join("new/c.json")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_link_out_of_the_root_is_refused_whatever_it_points_at() {
        let dir = scratch("outside");
        let root = dir.join("root");
        symlink(dir.join("outside"), root.join("evil")).unwrap();
        symlink(dir.join("outside/x.json"), root.join("a/file.json")).unwrap(); // dangling
        assert_eq!(
            resolve_under(&root, "evil/x.json").unwrap_err().unwrap(),
            dir.join("outside/x.json")
        );
        assert_eq!(
            resolve_under(&root, "a/file.json").unwrap_err().unwrap(),
            dir.join("outside/x.json")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_put_links_a_synced_whole_file_and_leaves_no_temporary_one() {
        let dir = scratch("put");
        let (target, tmp) = (dir.join("root/a/o.json"), dir.join("root/a/.o.json.1.tmp"));
        let synced = |_: &File| Ok::<(), PutError<()>>(());
        assert!(put(&target, &tmp, b"one", true, synced).ok().unwrap());
        assert_eq!(std::fs::read(&target).unwrap(), b"one");
        // if absent: a name taken is reported, not replaced
        assert!(!put(&target, &tmp, b"two", true, synced).ok().unwrap());
        assert_eq!(std::fs::read(&target).unwrap(), b"one");
        // otherwise renamed over it
        assert!(put(&target, &tmp, b"three", false, synced).ok().unwrap());
        assert_eq!(std::fs::read(&target).unwrap(), b"three");
        // a failed sync links nothing
        let other = dir.join("root/a/p.json");
        let failed = put(&other, &tmp, b"x", true, |_| Err(PutError::Hook("no")));
        assert!(matches!(failed, Err(PutError::Hook("no"))));
        assert!(!other.exists());
        let names: Vec<_> = std::fs::read_dir(dir.join("root/a"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("o.json")]);
        // a temporary name taken (another process's) fails the put, and is left alone
        std::fs::write(&tmp, b"theirs").unwrap();
        assert!(
            matches!(put(&other, &tmp, b"x", true, synced), Err(PutError::Io(e)) if e.kind() == io::ErrorKind::AlreadyExists)
        );
        assert_eq!(std::fs::read(&tmp).unwrap(), b"theirs");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
