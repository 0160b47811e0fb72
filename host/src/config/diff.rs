//! What changed between two configurations, for hot reload.

use super::Config;

/// The difference between the configuration in force and a newly loaded one.
///
/// Plugins and routes can be swapped while the host runs (events already queued stay queued
/// and go to the new plugin instances); the PBX connection, the server, storage and recordings
/// sections are read at start only, so a change there is listed in `needs_restart`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// Plugins only in the new configuration.
    pub plugins_added: Vec<String>,
    /// Plugins only in the old configuration.
    pub plugins_removed: Vec<String>,
    /// Plugins in both whose settings, secrets, permissions, limits, retry policy or file path
    /// changed. A plugin whose `.wasm` file changed on disk under the same path is not listed:
    /// the caller compares file contents itself if it wants to reload on that.
    pub plugins_changed: Vec<String>,
    /// Whether the routes or `default_plugins` changed.
    pub routes_changed: bool,
    /// Whether the engine settings (grace, internal calls, time zone, DID and
    /// trunk tables) changed.
    pub engine_changed: bool,
    /// Sections whose change takes effect only after a restart: `pbx`, `server`, `storage`,
    /// `recordings`.
    pub needs_restart: Vec<&'static str>,
}

impl ConfigDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == ConfigDiff::default()
    }
}

pub(super) fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let mut diff = ConfigDiff::default();
    for plugin in &new.plugins {
        match old.plugin(&plugin.name) {
            None => diff.plugins_added.push(plugin.name.clone()),
            Some(previous) => {
                // `place` is where it was written: moving lines around is no change.
                let mut previous = previous.clone();
                previous.place = plugin.place.clone();
                if previous != *plugin {
                    diff.plugins_changed.push(plugin.name.clone());
                }
            }
        }
    }
    for plugin in &old.plugins {
        if new.plugin(&plugin.name).is_none() {
            diff.plugins_removed.push(plugin.name.clone());
        }
    }
    diff.routes_changed = old.routes != new.routes;
    diff.engine_changed = old.engine != new.engine;
    // `url_place` is where it was written: moving lines around is no change.
    let mut old_pbx = old.pbx.clone();
    old_pbx.url_place = new.pbx.url_place.clone();
    if old_pbx != new.pbx {
        diff.needs_restart.push("pbx");
    }
    if old.server != new.server {
        diff.needs_restart.push("server");
    }
    if old.admin != new.admin {
        diff.needs_restart.push("admin");
    }
    if old.storage != new.storage {
        diff.needs_restart.push("storage");
    }
    if old.recordings != new.recordings {
        diff.needs_restart.push("recordings");
    }
    diff
}
