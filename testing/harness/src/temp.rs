//! Temporary paths: Unix socket paths and directories, unique in this
//! process and across processes, removed when dropped and by the signal
//! handler.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::registry::{register_temp_path, remove_path, unregister_temp_path};

/// `<temp dir>/<tag>-<pid>-<n><suffix>` for the next `n` for which `take`
/// succeeds (the path is free).
fn unique(tag: &str, suffix: &str, mut take: impl FnMut(&Path) -> bool) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir();
    loop {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{tag}-{}-{n}{suffix}", std::process::id()));
        if take(&path) {
            return path;
        }
    }
}

/// A fresh Unix socket path in the temp dir (no file there yet), removed
/// when dropped, whoever created the socket.
///
/// A test that checks a server removes its own socket file checks before
/// the guard is dropped; [`keep`](Self::keep) hands the path over to code
/// that removes it itself.
#[derive(Debug)]
pub struct TempSocket {
    path: PathBuf,
    armed: bool,
}

impl TempSocket {
    /// A path named after `tag` (kept short: a socket path has at most 107
    /// bytes).
    pub fn new(tag: &str) -> Self {
        let path = unique(tag, ".sock", |p| !p.exists());
        register_temp_path(&path);
        Self { path, armed: true }
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path as text (the temp dir's path is UTF-8 wherever the tests
    /// run; panics if not).
    pub fn as_str(&self) -> &str {
        match self.path.to_str() {
            Some(s) => s,
            None => panic!("the temp path {} is not UTF-8", self.path.display()),
        }
    }

    /// Disarms the guard: the path is no longer removed on drop.
    pub fn keep(mut self) -> PathBuf {
        self.armed = false;
        unregister_temp_path(&self.path);
        std::mem::take(&mut self.path)
    }
}

impl Drop for TempSocket {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
            unregister_temp_path(&self.path);
        }
    }
}

/// A fresh directory in the temp dir, removed with what it holds when
/// dropped.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<temp dir>/<tag>-<pid>-<n>`.
    pub fn new(tag: &str) -> Result<Self, String> {
        let mut failure = None;
        let path = unique(tag, "", |p| match std::fs::create_dir(p) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => {
                failure = Some(format!("creating the temp dir {}: {e}", p.display()));
                true
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        register_temp_path(&path);
        Ok(Self { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        remove_path(&self.path);
        unregister_temp_path(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_sockets_are_unique_and_removed_on_drop_unless_kept() {
        let a = TempSocket::new("harness-test");
        let b = TempSocket::new("harness-test");
        assert_ne!(a.path(), b.path());
        let listener = std::os::unix::net::UnixListener::bind(a.path()).unwrap();
        let path = a.path().to_owned();
        assert!(path.exists());
        drop(a);
        assert!(!path.exists());
        drop(listener);
        let kept = b.keep();
        std::fs::write(&kept, b"").unwrap();
        assert!(kept.exists());
        std::fs::remove_file(&kept).unwrap();
    }

    #[test]
    fn temp_dirs_are_removed_with_their_files() {
        let d = TempDir::new("harness-test-dir").unwrap();
        std::fs::write(d.path().join("f"), b"x").unwrap();
        let path = d.path().to_owned();
        drop(d);
        assert!(!path.exists());
    }
}
