//! The allow-list of repos (and their branches, paths and static ports) envs may run.

use crate::status::Port;

/// The allow-list: upstream's `repoBase` + `repoNames`, plus full `repos` entries.
///
/// Matching is exact: a repo URL is allowed only when it equals an entry's URL character for
/// character (a trailing `/` or `.git` is **not** tolerated), so the runner clones exactly a URL
/// the team lead listed. `repoBase` + `repoNames` entries are `repoBase/NAME` (upstream's rule:
/// everything before the last `/` is `repoBase`, the last part is in `repoNames`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Allowlist {
    entries: Vec<RepoEntry>,
}

/// One allowed repo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoEntry {
    /// The exact repo URL.
    pub url: String,
    /// Allowed branches; empty means any valid branch.
    pub branches: Vec<String>,
    /// Allowed Tiltfile paths; empty means any valid path.
    pub paths: Vec<String>,
    /// Static ports for runners that are not Tilt; empty means ports come from Tilt.
    pub ports: Vec<Port>,
}

impl Allowlist {
    /// The allow-list of these entries, in order (built by the config file's checks).
    pub(crate) fn new(entries: Vec<RepoEntry>) -> Self {
        Allowlist { entries }
    }

    /// The entry allowing `url`, if any (exact match).
    pub fn entry(&self, url: &str) -> Option<&RepoEntry> {
        self.entries.iter().find(|entry| entry.url == url)
    }

    /// Every allowed entry, `repoNames` ones first, in file order.
    pub fn entries(&self) -> &[RepoEntry] {
        &self.entries
    }
}
