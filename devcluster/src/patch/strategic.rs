//! Strategic merge patch, as kubectl sends it (`kubectl patch`, client-side `kubectl apply`).
//!
//! Maps merge and `null` deletes; lists with a merge key (see [`list_rules`]) merge item by
//! item, `Set` lists union, other lists are replaced. Directives: `$patch: replace|delete|merge`
//! in maps and list items, `$retainKeys`, `$setElementOrder/<field>`,
//! `$deleteFromPrimitiveList/<field>`.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::PatchError;
use super::list_rules::{ListShape, MergeMode, list_shape};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Applies a strategic merge `patch` (a JSON object) to `original`, an object of `kind`.
pub fn strategic_merge(kind: &str, original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(bad("a strategic merge patch must be a JSON object"));
    };
    let original = original.as_object().cloned().unwrap_or_default();
    let merger = Merger { kind };
    match merger.merge_map(&mut Vec::new(), original, patch)? {
        Merged::Map(m) => Ok(Value::Object(m)),
        Merged::Deleted => Err(PatchError::Invalid(
            "the strategic merge patch deletes the whole object".to_string(),
        )),
    }
}

fn bad(msg: impl Into<String>) -> PatchError {
    PatchError::BadRequest(msg.into())
}

enum Merged {
    Map(Map<String, Value>),
    /// `$patch: delete`: the map is removed from its parent.
    Deleted,
}

impl Merged {
    fn into_value(self) -> Option<Value> {
        match self {
            Merged::Map(m) => Some(Value::Object(m)),
            Merged::Deleted => None,
        }
    }
}

struct Merger<'a> {
    kind: &'a str,
}

impl Merger<'_> {
    fn merge_map(
        &self,
        names: &mut Vec<String>,
        mut original: Map<String, Value>,
        patch: &Map<String, Value>,
    ) -> Result<Merged, PatchError> {
        match patch.get(PATCH) {
            None => {}
            Some(Value::String(d)) if d == "merge" => {}
            Some(Value::String(d)) if d == "delete" => return Ok(Merged::Deleted),
            Some(Value::String(d)) if d == "replace" => {
                // Replace: the patch, minus the directive, is the whole new map.
                let mut rest = patch.clone();
                rest.remove(PATCH);
                return self.merge_map(names, Map::new(), &rest);
            }
            Some(other) => {
                return Err(bad(format!("unknown patch type {other} at {}", at(names))));
            }
        }

        if let Some(retain) = patch.get(RETAIN_KEYS) {
            let Value::Array(keys) = retain else {
                return Err(bad(format!(
                    "{RETAIN_KEYS} at {} must be a list",
                    at(names)
                )));
            };
            let mut keep = Vec::with_capacity(keys.len());
            for k in keys {
                let Value::String(k) = k else {
                    return Err(bad(format!(
                        "{RETAIN_KEYS} at {} must be a list of strings",
                        at(names)
                    )));
                };
                keep.push(k.as_str());
            }
            original.retain(|k, _| keep.contains(&k.as_str()));
        }

        // Server order of lists to be reordered, taken before the merge changes them.
        let mut server_order: HashMap<&str, Vec<Value>> = HashMap::new();
        for (key, value) in patch {
            if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
                let Value::Array(remove) = value else {
                    return Err(bad(format!("{key} at {} must be a list", at(names))));
                };
                if let Some(Value::Array(items)) = original.get_mut(field) {
                    items.retain(|item| !remove.contains(item));
                }
            } else if let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) {
                if !value.is_array() {
                    return Err(bad(format!("{key} at {} must be a list", at(names))));
                }
                let current = match original.get(field) {
                    Some(Value::Array(items)) => items.clone(),
                    _ => Vec::new(),
                };
                server_order.insert(field, current);
            }
        }

        for (key, value) in patch {
            if key == PATCH
                || key == RETAIN_KEYS
                || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
                || key.starts_with(SET_ELEMENT_ORDER)
            {
                continue;
            }
            if key.starts_with('$') {
                return Err(bad(format!(
                    "unknown strategic merge patch directive {key:?} at {}",
                    at(names)
                )));
            }
            if value.is_null() {
                original.remove(key);
                continue;
            }
            names.push(key.clone());
            let current = original.remove(key);
            let merged = match (current, value) {
                (Some(Value::Object(cur)), Value::Object(p)) => {
                    self.merge_map(names, cur, p)?.into_value()
                }
                (_, Value::Object(p)) => self.merge_map(names, Map::new(), p)?.into_value(),
                (Some(Value::Array(cur)), Value::Array(p)) => {
                    Some(Value::Array(self.merge_list(names, cur, p)?))
                }
                (_, Value::Array(p)) => {
                    Some(Value::Array(self.merge_list(names, Vec::new(), p)?))
                }
                (_, scalar) => Some(scalar.clone()),
            };
            if let Some(merged) = merged {
                original.insert(key.clone(), merged);
            }
            names.pop();
        }

        for (key, order) in patch {
            let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) else {
                continue;
            };
            let (Value::Array(order), Some(Value::Array(items))) = (order, original.get_mut(field))
            else {
                continue;
            };
            names.push(field.to_string());
            let shape = list_shape(self.kind, names, MergeMode::Strategic);
            names.pop();
            let server = server_order.remove(field).unwrap_or_default();
            let merged = std::mem::take(items);
            *items = reorder(shape, merged, order, &server);
        }
        Ok(Merged::Map(original))
    }

    fn merge_list(
        &self,
        names: &mut Vec<String>,
        mut original: Vec<Value>,
        patch: &[Value],
    ) -> Result<Vec<Value>, PatchError> {
        let is_replace = |item: &Value| item.get(PATCH).and_then(Value::as_str) == Some("replace");
        if patch.iter().any(is_replace) {
            // `{"$patch": "replace"}` in a list: the other items are the whole new list.
            return patch
                .iter()
                .filter(|item| !is_replace(item))
                .map(|item| self.clean(names, item))
                .collect();
        }
        match list_shape(self.kind, names, MergeMode::Strategic) {
            ListShape::Atomic => patch.iter().map(|item| self.clean(names, item)).collect(),
            ListShape::Set => {
                for item in patch {
                    if !original.contains(item) {
                        original.push(item.clone());
                    }
                }
                let mut unique: Vec<Value> = Vec::with_capacity(original.len());
                for item in original {
                    if !unique.contains(&item) {
                        unique.push(item);
                    }
                }
                Ok(unique)
            }
            ListShape::Map(keys) => {
                let merge_key = keys.first().map(|k| k.name).unwrap_or("name");
                for item in patch {
                    let Value::Object(fields) = item else {
                        return Err(bad(format!(
                            "{}: items of a list merged by {merge_key:?} must be objects, found {item}",
                            at(names)
                        )));
                    };
                    let Some(key_value) = fields.get(merge_key) else {
                        return Err(bad(format!(
                            "{}: item {item} does not contain declared merge key: {merge_key}",
                            at(names)
                        )));
                    };
                    let found = original
                        .iter()
                        .position(|o| o.get(merge_key) == Some(key_value));
                    if fields.get(PATCH).and_then(Value::as_str) == Some("delete") {
                        original.retain(|o| o.get(merge_key) != Some(key_value));
                        continue;
                    }
                    let current = found
                        .and_then(|i| original.get(i))
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    let merged = self.merge_map(names, current, fields)?;
                    match (found, merged) {
                        (Some(i), Merged::Map(m)) => original[i] = Value::Object(m),
                        (None, Merged::Map(m)) => original.push(Value::Object(m)),
                        (Some(i), Merged::Deleted) => {
                            original.remove(i);
                        }
                        (None, Merged::Deleted) => {}
                    }
                }
                Ok(original)
            }
        }
    }

    /// A patch value stored as is: directives and `null`s have no meaning there and are dropped.
    fn clean(&self, names: &mut Vec<String>, value: &Value) -> Result<Value, PatchError> {
        match value {
            Value::Object(m) => match self.merge_map(names, Map::new(), m)? {
                Merged::Map(m) => Ok(Value::Object(m)),
                Merged::Deleted => Ok(Value::Object(Map::new())),
            },
            other => Ok(other.clone()),
        }
    }
}

fn at(names: &[String]) -> String {
    if names.is_empty() {
        "the top level".to_string()
    } else {
        format!(".{}", names.join("."))
    }
}

/// Applies a `$setElementOrder` list: items it names come in its order; the others (present
/// only on the server) keep their place relative to the server's order, as the real server
/// interleaves them.
fn reorder(shape: ListShape, merged: Vec<Value>, order: &[Value], server: &[Value]) -> Vec<Value> {
    let identity = |item: &Value| -> Value {
        match shape {
            ListShape::Map(keys) => keys
                .first()
                .and_then(|k| item.get(k.name))
                .cloned()
                .unwrap_or(Value::Null),
            _ => item.clone(),
        }
    };
    let order_ids: Vec<Value> = order.iter().map(identity).collect();
    let server_ids: Vec<Value> = server.iter().map(identity).collect();
    let server_index = |item: &Value| server_ids.iter().position(|s| *s == identity(item));

    let (mut named, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|item| order_ids.contains(&identity(item)));
    named.sort_by_key(|item| order_ids.iter().position(|o| *o == identity(item)));
    server_only.sort_by_key(|item| server_index(item).unwrap_or(usize::MAX));

    // Insert server-only items among the named ones: before the first named item that the
    // server had after them.
    let mut out = Vec::with_capacity(named.len() + server_only.len());
    let mut named = named.into_iter().peekable();
    for item in server_only {
        while let Some(next) = named.peek() {
            let goes_before = match (server_index(&item), server_index(next)) {
                (Some(a), Some(b)) => a < b,
                _ => false,
            };
            if goes_before {
                break;
            }
            if let Some(next) = named.next() {
                out.push(next);
            }
        }
        out.push(item);
    }
    out.extend(named);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(kind: &str, original: Value, patch: Value) -> Value {
        strategic_merge(kind, &original, &patch).expect("patch applies")
    }

    fn deployment(containers: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"template": {"spec": {"containers": containers}}}})
    }

    #[test]
    fn maps_merge_and_null_deletes() {
        let out = smp(
            "ConfigMap",
            json!({"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}}),
            json!({"metadata": {"labels": {"a": null, "c": "3"}}, "data": {"k2": "v2"}}),
        );
        assert_eq!(
            out,
            json!({"metadata": {"name": "c", "labels": {"b": "2", "c": "3"}},
                   "data": {"k": "v", "k2": "v2"}})
        );
    }

    #[test]
    fn containers_merge_by_name_and_unkeyed_lists_replace() {
        let out = smp(
            "Deployment",
            deployment(json!([
                {"name": "app", "image": "app:1", "args": ["a", "b"],
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "sidecar", "image": "side:1"}
            ])),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "app:2", "args": ["c"], "env": [{"name": "B", "value": "3"}]}
            ]}}}}),
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([
                {"name": "app", "image": "app:2", "args": ["c"],
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]},
                {"name": "sidecar", "image": "side:1"}
            ])
        );
    }

    #[test]
    fn kubectl_three_way_patch_deletes_a_container_and_sets_the_order() {
        // What `kubectl apply` sends after "sidecar" was removed from the file and "extra"
        // added before "app".
        let out = smp(
            "Deployment",
            deployment(json!([
                {"name": "app", "image": "app:1"},
                {"name": "sidecar", "image": "side:1"},
                {"name": "injected", "image": "mesh:1"}
            ])),
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "extra"}, {"name": "app"}],
                "containers": [
                    {"name": "extra", "image": "extra:1"},
                    {"$patch": "delete", "name": "sidecar"}
                ]
            }}}}),
        );
        // "injected" (added by someone else, only on the server) keeps its place after "app".
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([
                {"name": "extra", "image": "extra:1"},
                {"name": "app", "image": "app:1"},
                {"name": "injected", "image": "mesh:1"}
            ])
        );
    }

    #[test]
    fn set_element_order_interleaves_server_only_items() {
        let out = smp(
            "Pod",
            json!({"spec": {"containers": [{"name": "a"}, {"name": "s"}, {"name": "b"}]}}),
            json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}),
        );
        // "s" was before b on the server and stays before it.
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "s"}, {"name": "b"}, {"name": "a"}])
        );
    }

    #[test]
    fn patch_replace_and_delete_directives() {
        let original = json!({"metadata": {"name": "x", "labels": {"a": "1", "b": "2"}},
                              "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let out = smp(
            "Pod",
            original.clone(),
            json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({"c": "3"}));

        let out = smp(
            "Pod",
            original.clone(),
            json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "z"}]}}),
        );
        assert_eq!(out["spec"]["containers"], json!([{"name": "z"}]));

        let out = smp(
            "Pod",
            original,
            json!({"metadata": {"labels": {"$patch": "delete"}}}),
        );
        assert_eq!(out["metadata"], json!({"name": "x"}));
    }

    #[test]
    fn retain_keys_drops_unlisted_fields() {
        // kubectl switching a deployment strategy from RollingUpdate to Recreate.
        let out = smp(
            "Deployment",
            json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        );
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn finalizers_merge_as_a_set_and_delete_from_primitive_list() {
        let out = smp(
            "ConfigMap",
            json!({"metadata": {"name": "x", "finalizers": ["a", "b"]}}),
            json!({"metadata": {"finalizers": ["c", "a"], "$deleteFromPrimitiveList/finalizers": ["b"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "c"]));
    }

    #[test]
    fn other_merge_keys_from_the_table() {
        let out = smp(
            "Service",
            json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}}),
            json!({"spec": {"ports": [{"port": 443, "targetPort": 8443}]}}),
        );
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 80, "name": "http"}, {"port": 443, "name": "https", "targetPort": 8443}])
        );
        let out = smp(
            "Deployment",
            json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]},
                   "status": {"conditions": [{"type": "Available", "status": "False"}]}}),
            json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]},
                   "status": {"conditions": [{"type": "Available", "status": "True"}]}}),
        );
        assert_eq!(
            out["metadata"]["ownerReferences"],
            json!([{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}])
        );
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "Available", "status": "True"}])
        );
        // Role rules have no merge key: replaced.
        let out = smp(
            "Role",
            json!({"rules": [{"verbs": ["get"]}]}),
            json!({"rules": [{"verbs": ["list"]}]}),
        );
        assert_eq!(out["rules"], json!([{"verbs": ["list"]}]));
    }

    #[test]
    fn malformed_patches_are_bad_requests() {
        for patch in [
            json!([1]),
            json!({"spec": {"containers": [{"image": "no-name"}]}}),
            json!({"spec": {"containers": ["x"]}}),
            json!({"$patch": "explode"}),
            json!({"spec": {"$retainKeys": "x"}}),
            json!({"$bogus": 1}),
        ] {
            let err = strategic_merge("Pod", &json!({"spec": {}}), &patch).expect_err("bad");
            assert!(matches!(err, PatchError::BadRequest(_)), "{patch}: {err:?}");
        }
    }
}
