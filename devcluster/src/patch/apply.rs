//! Server-side apply and the ownership bookkeeping of updates.
//!
//! Follows the real server (structured-merge-diff): the applied configuration is merged into
//! the live object; the applier then owns exactly the fields of its configuration; fields it
//! applied last time but omits now are removed unless another manager owns them; changing a
//! field another manager owns is a conflict unless forced, which moves the ownership.

use std::collections::HashMap;
use std::ops::Bound;

use serde_json::{Map, Value};

use super::fieldset::{
    FieldPath, FieldSet, Members, element_of, flatten, is_item_key_field, remove_path,
};
use super::list_rules::{ListShape, MergeMode, list_shape};
use super::managed::{self, ManagedEntry, ManagerId, Operation};
use super::{FieldConflict, PatchError};

/// One apply: `config` is the cleaned applied configuration (no nulls, no managedFields, only
/// the fields the endpoint may change).
pub struct Apply<'a> {
    pub kind: &'a str,
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: Option<&'a str>,
    pub force: bool,
    pub now: &'a str,
}

impl Apply<'_> {
    pub fn run(&self, config: &Value, live: Option<&Value>) -> Result<Value, PatchError> {
        let flat_config = flatten(self.kind, config);
        if !flat_config.problems.is_empty() {
            return Err(PatchError::Invalid(flat_config.problems.join("; ")));
        }
        let live = live.cloned().unwrap_or_else(|| Value::Object(Map::new()));
        let mut merged = merge_applied(self.kind, &mut Vec::new(), &live, config);

        let mut entries = managed::read(&live);
        let id = ManagerId {
            manager: self.manager.to_string(),
            operation: Operation::Apply,
            api_version: self.api_version.to_string(),
            subresource: self.subresource.map(str::to_string),
        };
        let previous = entries.iter().position(|e| e.id == id);
        let last_set = previous
            .and_then(|i| entries.get(i))
            .map(|e| e.fields.clone())
            .unwrap_or_default();
        let new_set: FieldSet = flat_config.members.into_keys().collect();

        // Prune what this manager applied before and nobody claims now.
        let mut kept: FieldSet = new_set.clone();
        for e in entries.iter().filter(|e| e.id != id) {
            kept.extend(e.fields.iter().cloned());
        }
        for path in last_set.difference(&kept) {
            if has_descendant(&kept, path) || is_item_key_field(path) {
                continue;
            }
            remove_path(self.kind, &mut merged, path);
        }

        let flat_live = flatten(self.kind, &live).members;
        let flat_merged = flatten(self.kind, &merged).members;
        let changed = changed_paths(&flat_live, &flat_merged);
        let removed = removed_paths(&flat_live, &flat_merged);

        let mut conflicts = Vec::new();
        for e in entries.iter().filter(|e| e.id != id) {
            for path in e.fields.intersection(&changed) {
                conflicts.push(FieldConflict::new(&e.id, path));
            }
        }
        if !conflicts.is_empty() && !self.force {
            conflicts.sort_by(|a, b| (&a.description, &a.field).cmp(&(&b.description, &b.field)));
            return Err(PatchError::Conflict(conflicts));
        }
        for e in entries.iter_mut().filter(|e| e.id != id) {
            // Forced: the applier takes the conflicting fields.
            e.fields
                .retain(|p| !changed.contains(p) && !removed.contains(p));
        }

        let object_changed = !same_ignoring_managed_fields(&live, &merged);
        match previous.and_then(|i| entries.get_mut(i)) {
            Some(entry) => {
                if object_changed || entry.fields != new_set {
                    entry.time = Some(self.now.to_string());
                }
                entry.fields = new_set;
            }
            None => entries.push(ManagedEntry {
                id,
                time: Some(self.now.to_string()),
                fields: new_set,
            }),
        }
        managed::write(&mut merged, entries);
        Ok(merged)
    }
}

/// Records an "Update" operation (create/PUT) by `manager` in new's managedFields, like the real
/// server: `manager` gets the fields an update from `old` to `new` changed, taking them from any
/// other manager (so their later applies conflict), and removed fields leave every manager.
pub fn record_update(
    manager: &str,
    old: Option<&Value>,
    new: &mut Value,
    now: &str,
    subresource: Option<&str>,
) {
    let text = |v: Option<&Value>, key: &str| -> Option<String> {
        v.and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let kind = text(Some(new), "kind")
        .or_else(|| text(old, "kind"))
        .unwrap_or_default();
    let api_version = text(Some(new), "apiVersion")
        .or_else(|| text(old, "apiVersion"))
        .unwrap_or_default();

    let empty = Value::Object(Map::new());
    let flat_old = flatten(&kind, old.unwrap_or(&empty)).members;
    let flat_new = flatten(&kind, new).members;
    let changed = changed_paths(&flat_old, &flat_new);
    let removed = removed_paths(&flat_old, &flat_new);

    let mut entries = old.map(managed::read).unwrap_or_default();
    let id = ManagerId {
        manager: manager.to_string(),
        operation: Operation::Update,
        api_version,
        subresource: subresource.map(str::to_string),
    };
    for e in entries.iter_mut().filter(|e| e.id != id) {
        e.fields
            .retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    match entries.iter_mut().find(|e| e.id == id) {
        Some(entry) => {
            let mut fields: FieldSet = entry.fields.difference(&removed).cloned().collect();
            fields.extend(changed.iter().cloned());
            if fields != entry.fields {
                entry.time = Some(now.to_string());
                entry.fields = fields;
            }
        }
        None => entries.push(ManagedEntry {
            id,
            time: Some(now.to_string()),
            fields: changed,
        }),
    }
    managed::write(new, entries);
}

/// Members of `after` that are new or hold a different value than in `before`.
fn changed_paths(before: &Members, after: &Members) -> FieldSet {
    after
        .iter()
        .filter(|(path, value)| before.get(*path) != Some(*value))
        .map(|(path, _)| path.clone())
        .collect()
}

/// Members of `before` that `after` no longer has.
fn removed_paths(before: &Members, after: &Members) -> FieldSet {
    before
        .keys()
        .filter(|path| !after.contains_key(*path))
        .cloned()
        .collect()
}

/// Whether `set` holds a path strictly below `path` (sorted order puts the first one right
/// after `path`).
fn has_descendant(set: &FieldSet, path: &FieldPath) -> bool {
    set.range::<FieldPath, _>((Bound::Excluded(path), Bound::Unbounded))
        .next()
        .is_some_and(|next| next.len() > path.len() && next.starts_with(path))
}

fn same_ignoring_managed_fields(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(Value::Object(meta)) = v.get_mut("metadata") {
            meta.remove("managedFields");
        }
        v
    };
    strip(a) == strip(b)
}

/// The live object with the applied configuration merged in: maps merge, keyed and set lists
/// merge by item, anything else takes the configured value.
fn merge_applied(kind: &str, names: &mut Vec<String>, live: &Value, config: &Value) -> Value {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) => {
            let mut out = l.clone();
            for (name, cv) in c {
                names.push(name.clone());
                let merged = match l.get(name) {
                    Some(lv) => merge_applied(kind, names, lv, cv),
                    None => cv.clone(),
                };
                names.pop();
                out.insert(name.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(c)) => merge_lists(kind, names, l, c),
        _ => config.clone(),
    }
}

/// Merges two associative lists, keeping the configuration's order and the live-only items
/// where they were relative to the shared ones (as the real server does).
fn merge_lists(kind: &str, names: &mut Vec<String>, live: &[Value], config: &[Value]) -> Value {
    let shape = list_shape(kind, names, MergeMode::Apply);
    if shape == ListShape::Atomic {
        return Value::Array(config.to_vec());
    }
    let keyed = |items: &[Value]| -> Option<Vec<(String, Value)>> {
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for item in items {
            let key = element_of(shape, item)?;
            if !seen.contains(&key) {
                seen.push(key.clone());
                out.push((key, item.clone()));
            }
        }
        Some(out)
    };
    let (Some(live), Some(config)) = (keyed(live), keyed(config)) else {
        // Items that cannot be identified: the list can only be replaced.
        return Value::Array(config.to_vec());
    };
    let live_index: HashMap<&str, usize> = live
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (k.as_str(), i))
        .collect();
    let in_config: HashMap<&str, usize> = config
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (k.as_str(), i))
        .collect();
    let mut shared = config
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| live_index.contains_key(k));
    let mut next_shared = shared.next();

    let mut out = Vec::with_capacity(live.len() + config.len());
    let (mut li, mut ri) = (0, 0);
    while li < live.len() || ri < config.len() {
        if let (Some((lk, lv)), Some((rk, rv))) = (live.get(li), config.get(ri)) {
            if lk == rk {
                out.push(merge_applied(kind, names, lv, rv));
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if in_config.contains_key(lk.as_str()) && next_shared != Some(lk.as_str()) {
                // Shared, but the configuration places it later.
                li += 1;
                continue;
            }
        }
        if let Some((lk, lv)) = live.get(li)
            && !in_config.contains_key(lk.as_str())
        {
            out.push(lv.clone());
            li += 1;
            continue;
        }
        if let Some((rk, rv)) = config.get(ri) {
            let merged = match live_index.get(rk.as_str()).and_then(|&i| live.get(i)) {
                Some((_, lv)) => merge_applied(kind, names, lv, rv),
                None => rv.clone(),
            };
            out.push(merged);
            if next_shared == Some(rk.as_str()) {
                next_shared = shared.next();
            }
            ri += 1;
            continue;
        }
        // Only live items the configuration already placed are left.
        li += 1;
    }
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged_list(live: Value, config: Value) -> Value {
        let names = vec!["spec".to_string(), "containers".to_string()];
        let (Value::Array(l), Value::Array(c)) = (live, config) else {
            panic!("lists")
        };
        merge_lists("Pod", &mut names.clone(), &l, &c)
    }

    #[test]
    fn keyed_lists_keep_config_order_and_live_only_items_in_place() {
        assert_eq!(
            merged_list(
                json!([{"name": "a", "image": "1"}, {"name": "x"}, {"name": "b"}]),
                json!([{"name": "b", "image": "2"}, {"name": "a"}])
            ),
            json!([{"name": "x"}, {"name": "b", "image": "2"}, {"name": "a", "image": "1"}])
        );
        assert_eq!(
            merged_list(
                json!([{"name": "a"}, {"name": "x"}]),
                json!([{"name": "a"}, {"name": "new"}])
            ),
            json!([{"name": "a"}, {"name": "x"}, {"name": "new"}])
        );
    }

    #[test]
    fn descendants_are_found_in_sorted_sets() {
        let p = |s: &[&str]| -> FieldPath { s.iter().map(|x| x.to_string()).collect() };
        let set: FieldSet = [p(&["f:a", "f:b"]), p(&["f:ab"])].into_iter().collect();
        assert!(has_descendant(&set, &p(&["f:a"])));
        assert!(!has_descendant(&set, &p(&["f:a", "f:b"])));
        assert!(!has_descendant(&set, &p(&["f:b"])));
    }
}
