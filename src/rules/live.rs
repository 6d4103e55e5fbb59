//! A shop's rules as the daemon uses them: swapped whole on reload (SIGHUP or a change
//! to the file), never half-updated; a broken file is refused and the old rules stay.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use super::{RuleSet, RulesError};

/// The current rules of one shop; clones share them.
#[derive(Clone)]
pub struct LiveRules {
    path: PathBuf,
    inner: Arc<RwLock<(Arc<RuleSet>, Option<SystemTime>)>>,
}

impl std::fmt::Debug for LiveRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LiveRules({}, version {})",
            self.path.display(),
            self.current().version
        )
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl LiveRules {
    /// Rules loaded from `path`.
    pub fn new(path: PathBuf, rules: RuleSet) -> LiveRules {
        let mtime = modified(&path);
        LiveRules {
            path,
            inner: Arc::new(RwLock::new((Arc::new(rules), mtime))),
        }
    }

    /// The rules in force now.
    pub fn current(&self) -> Arc<RuleSet> {
        match self.inner.read() {
            Ok(g) => g.0.clone(),
            Err(poisoned) => poisoned.into_inner().0.clone(),
        }
    }

    /// The file the rules come from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file changed since it was last loaded (or last refused).
    pub fn changed_on_disk(&self) -> bool {
        let now = modified(&self.path);
        match self.inner.read() {
            Ok(g) => now != g.1,
            Err(_) => false,
        }
    }

    /// Load the file again. On success the new rules replace the old ones at once and
    /// `(old version, new version)` is returned; on error nothing changes.
    pub fn reload(&self) -> Result<(String, String), RulesError> {
        let mtime = modified(&self.path);
        let loaded = RuleSet::load(&self.path);
        let mut g = match self.inner.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Remember the refused file's time too, so a broken file is reported once.
        g.1 = mtime;
        let new = loaded?;
        let old = g.0.version.clone();
        let version = new.version.clone();
        g.0 = Arc::new(new);
        Ok((old, version))
    }
}
