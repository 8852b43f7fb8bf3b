//! Field sets: which fields of an object a manager owns, and their `fieldsV1` wire format.
//!
//! A field path is a list of encoded path elements exactly as `fieldsV1` spells them:
//! `f:<field>`, `k:<item key as JSON>` for items of keyed lists, `v:<value as JSON>` for items of
//! set lists. A set holds the paths of leaves (scalars, atomic lists, empty maps and lists) and
//! of list items.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::list_rules::{KeyField, ListShape, MergeMode, list_shape};

pub type FieldPath = Vec<String>;
pub type FieldSet = BTreeSet<FieldPath>;

/// Every member of an object: leaves with their value, list items with `None` (an item is
/// identified by its key, so only its presence matters).
pub type Members = BTreeMap<FieldPath, Option<Value>>;

/// Paths the server never attributes to a manager (identity and server-set metadata).
const UNOWNED: &[&[&str]] = &[
    &["f:apiVersion"],
    &["f:kind"],
    &["f:metadata"],
    &["f:metadata", "f:name"],
    &["f:metadata", "f:namespace"],
    &["f:metadata", "f:creationTimestamp"],
    &["f:metadata", "f:selfLink"],
    &["f:metadata", "f:uid"],
    &["f:metadata", "f:generation"],
    &["f:metadata", "f:managedFields"],
    &["f:metadata", "f:resourceVersion"],
    &["f:metadata", "f:deletionTimestamp"],
    &["f:metadata", "f:deletionGracePeriodSeconds"],
];

pub fn field(name: &str) -> String {
    format!("f:{name}")
}

/// The `k:` element of a keyed-list item, or None when the item is not an object or lacks a key
/// field that has no default.
pub fn item_element(keys: &[KeyField], item: &Value) -> Option<String> {
    let obj = item.as_object()?;
    let mut parts: Vec<(&str, Value)> = Vec::with_capacity(keys.len());
    for k in keys {
        let value = match (obj.get(k.name), k.default) {
            (Some(v), _) if !v.is_null() => v.clone(),
            (_, Some(default)) => Value::String(default.to_string()),
            _ => return None,
        };
        parts.push((k.name, value));
    }
    // Sorted by field name, compact, as the real server writes it.
    parts.sort_by(|a, b| a.0.cmp(b.0));
    let body: Vec<String> = parts
        .iter()
        .map(|(name, v)| format!("{}:{}", Value::String((*name).to_string()), v))
        .collect();
    Some(format!("k:{{{}}}", body.join(",")))
}

/// The `v:` element of a set-list item, or None for an item that is not a scalar.
pub fn set_element(item: &Value) -> Option<String> {
    match item {
        Value::Object(_) | Value::Array(_) | Value::Null => None,
        scalar => Some(format!("v:{scalar}")),
    }
}

/// The element addressing `item` in a list of `shape`.
pub fn element_of(shape: ListShape, item: &Value) -> Option<String> {
    match shape {
        ListShape::Map(keys) => item_element(keys, item),
        ListShape::Set => set_element(item),
        ListShape::Atomic => None,
    }
}

/// The result of walking an object for its members.
pub struct Flattened {
    pub members: Members,
    /// Lists that could not be walked item by item (missing or duplicate keys), described like
    /// the real server does; they were treated as atomic.
    pub problems: Vec<String>,
}

/// Every member of `obj` (an object of `kind`), without the paths no manager owns.
pub fn flatten(kind: &str, obj: &Value) -> Flattened {
    let mut walker = Walker {
        kind,
        names: Vec::new(),
        path: Vec::new(),
        out: Members::new(),
        problems: Vec::new(),
    };
    if let Value::Object(m) = obj {
        walker.walk_map(m);
    }
    let mut members = walker.out;
    for unowned in UNOWNED {
        let p: FieldPath = unowned.iter().map(|s| s.to_string()).collect();
        members.remove(&p);
    }
    Flattened {
        members,
        problems: walker.problems,
    }
}

/// The field set of `obj`.
#[cfg(test)]
pub fn field_set(kind: &str, obj: &Value) -> FieldSet {
    flatten(kind, obj).members.into_keys().collect()
}

struct Walker<'a> {
    kind: &'a str,
    names: Vec<String>,
    path: FieldPath,
    out: Members,
    problems: Vec<String>,
}

impl Walker<'_> {
    fn walk(&mut self, v: &Value) {
        match v {
            Value::Null => {}
            Value::Object(m) if m.is_empty() => self.leaf(v),
            Value::Object(m) => self.walk_map(m),
            Value::Array(items) if items.is_empty() => self.leaf(v),
            Value::Array(items) => self.walk_list(v, items),
            _ => self.leaf(v),
        }
    }

    fn leaf(&mut self, v: &Value) {
        self.out.insert(self.path.clone(), Some(v.clone()));
    }

    fn walk_map(&mut self, m: &Map<String, Value>) {
        for (name, child) in m {
            if child.is_null() {
                continue;
            }
            // managedFields describe the object; they are not part of it.
            if self.path.len() == 1 && self.path[0] == "f:metadata" && name == "managedFields" {
                continue;
            }
            self.names.push(name.clone());
            self.path.push(field(name));
            self.walk(child);
            self.path.pop();
            self.names.pop();
        }
    }

    fn walk_list(&mut self, whole: &Value, items: &[Value]) {
        let shape = list_shape(self.kind, &self.names, MergeMode::Apply);
        if shape == ListShape::Atomic {
            return self.leaf(whole);
        }
        let mut elements = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match element_of(shape, item) {
                Some(e) => elements.push(e),
                None => {
                    let why = match shape {
                        ListShape::Map(keys) => format!(
                            "associative list with keys has an element that omits key field {:?} or is not an object",
                            keys.iter().map(|k| k.name).collect::<Vec<_>>().join(",")
                        ),
                        _ => "set list has an element that is not a scalar".to_string(),
                    };
                    self.problems
                        .push(format!("{}: element {i}: {why}", display_path(&self.path)));
                    return self.leaf(whole);
                }
            }
        }
        let mut seen = BTreeSet::new();
        for (element, item) in elements.into_iter().zip(items) {
            if !seen.insert(element.clone()) {
                self.problems.push(format!(
                    "{}: duplicate entries for key {}",
                    display_path(&self.path),
                    display_element(&element)
                ));
                continue;
            }
            self.path.push(element);
            self.out.insert(self.path.clone(), None);
            if let Value::Object(m) = item {
                self.walk_map(m);
            }
            self.path.pop();
        }
    }
}

/// A path as the real server prints it in conflicts: `.spec.containers[name="app"].image`.
pub fn display_path(path: &[String]) -> String {
    path.iter().map(|e| display_element(e)).collect()
}

fn display_element(element: &str) -> String {
    if let Some(name) = element.strip_prefix("f:") {
        return format!(".{name}");
    }
    if let Some(value) = element.strip_prefix("v:") {
        return format!("[={value}]");
    }
    if let Some(index) = element.strip_prefix("i:") {
        return format!("[{index}]");
    }
    if let Some(key) = element.strip_prefix("k:") {
        if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(key) {
            let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            return format!("[{}]", parts.join(","));
        }
        return format!("[{key}]");
    }
    element.to_string()
}

/// Reads a `fieldsV1` tree; tolerant of malformed input (what cannot be read is skipped).
pub fn from_fields_v1(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    let mut prefix = Vec::new();
    read_node(v, &mut prefix, &mut out);
    out
}

fn read_node(v: &Value, prefix: &mut FieldPath, out: &mut FieldSet) {
    let Value::Object(m) = v else { return };
    for (element, child) in m {
        if element == "." {
            if !prefix.is_empty() {
                out.insert(prefix.clone());
            }
            continue;
        }
        prefix.push(element.clone());
        match child {
            Value::Object(cm) if !cm.is_empty() => read_node(child, prefix, out),
            _ => {
                out.insert(prefix.clone());
            }
        }
        prefix.pop();
    }
}

#[derive(Default)]
struct Node {
    member: bool,
    children: BTreeMap<String, Node>,
}

/// Writes a set as a `fieldsV1` tree: `{}` for a member without children, `".": {}` for a
/// member that also has children.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Node::default();
    for path in set {
        let mut node = &mut root;
        for element in path {
            node = node.children.entry(element.clone()).or_default();
        }
        node.member = true;
    }
    write_node(&root, true)
}

fn write_node(node: &Node, root: bool) -> Value {
    let mut m = Map::new();
    if node.member && !root && !node.children.is_empty() {
        m.insert(".".to_string(), Value::Object(Map::new()));
    }
    for (element, child) in &node.children {
        m.insert(element.clone(), write_node(child, false));
    }
    Value::Object(m)
}

/// Removes the member at `path` from `obj`; containers it empties are removed too (the real
/// server drops them on serialisation). Returns whether anything was removed.
pub fn remove_path(kind: &str, obj: &mut Value, path: &[String]) -> bool {
    let mut names = Vec::new();
    remove_in(kind, &mut names, obj, path)
}

fn remove_in(kind: &str, names: &mut Vec<String>, v: &mut Value, path: &[String]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    if let Some(name) = first.strip_prefix("f:") {
        let Value::Object(m) = v else { return false };
        if rest.is_empty() {
            return m.remove(name).is_some();
        }
        let Some(child) = m.get_mut(name) else {
            return false;
        };
        names.push(name.to_string());
        let removed = remove_in(kind, names, child, rest);
        names.pop();
        if removed && is_empty_container(child) {
            m.remove(name);
        }
        return removed;
    }
    let Value::Array(items) = v else { return false };
    let shape = list_shape(kind, names, MergeMode::Apply);
    let Some(index) = items
        .iter()
        .position(|item| element_of(shape, item).as_deref() == Some(first.as_str()))
    else {
        return false;
    };
    if rest.is_empty() {
        items.remove(index);
        return true;
    }
    match items.get_mut(index) {
        Some(item) => remove_in(kind, names, item, rest),
        None => false,
    }
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Whether the last element of `path` is a key field of the list item it belongs to (removing
/// it alone would leave an item that cannot be identified).
pub fn is_item_key_field(path: &[String]) -> bool {
    let [.., parent, last] = path else {
        return false;
    };
    let (Some(key), Some(name)) = (parent.strip_prefix("k:"), last.strip_prefix("f:")) else {
        return false;
    };
    matches!(serde_json::from_str::<Value>(key), Ok(Value::Object(fields)) if fields.contains_key(name))
}

/// Nesting depth of a value, computed without recursion (values can come from the network).
pub fn depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 1usize)];
    while let Some((value, d)) = stack.pop() {
        deepest = deepest.max(d);
        match value {
            Value::Object(m) => stack.extend(m.values().map(|c| (c, d + 1))),
            Value::Array(a) => stack.extend(a.iter().map(|c| (c, d + 1))),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(elements: &[&str]) -> FieldPath {
        elements.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_deployment_flattens_to_real_fields_v1() {
        let deploy = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                         "managedFields": [{"manager": "x"}]},
            "spec": {"replicas": 2, "template": {"spec": {
                "containers": [{"name": "app", "image": "nginx",
                                "ports": [{"containerPort": 80}], "args": ["a", "b"]}],
                "volumes": [{"name": "cache", "emptyDir": {}}]}}}
        });
        let fields = to_fields_v1(&field_set("Deployment", &deploy));
        assert_eq!(
            fields,
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {
                    "f:containers": {"k:{\"name\":\"app\"}": {
                        ".": {}, "f:args": {}, "f:image": {}, "f:name": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                            ".": {}, "f:containerPort": {}}}}},
                    "f:volumes": {"k:{\"name\":\"cache\"}": {".": {}, "f:emptyDir": {}, "f:name": {}}}}}}
            })
        );
        // And reads back to the same set.
        assert_eq!(
            from_fields_v1(&fields),
            field_set("Deployment", &deploy),
            "round trip"
        );
    }

    #[test]
    fn set_lists_use_value_elements() {
        let cm = json!({"metadata": {"name": "x", "finalizers": ["a.io/x", "b.io/y"]}});
        let set = field_set("ConfigMap", &cm);
        assert!(set.contains(&p(&["f:metadata", "f:finalizers", "v:\"a.io/x\""])));
        assert_eq!(
            display_path(&p(&["f:metadata", "f:finalizers", "v:\"a.io/x\""])),
            ".metadata.finalizers[=\"a.io/x\"]"
        );
    }

    #[test]
    fn items_without_keys_or_with_duplicate_keys_are_reported() {
        let pod = json!({"spec": {"containers": [{"image": "x"}]}});
        let f = flatten("Pod", &pod);
        assert_eq!(f.problems.len(), 1, "{:?}", f.problems);
        assert!(f.problems[0].starts_with(".spec.containers: element 0"));
        assert!(f.members.contains_key(&p(&["f:spec", "f:containers"])));

        let pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "a", "image": "y"}]}});
        let f = flatten("Pod", &pod);
        assert_eq!(
            f.problems,
            vec![".spec.containers: duplicate entries for key [name=\"a\"]".to_string()]
        );
    }

    #[test]
    fn removing_an_item_or_the_last_key_removes_emptied_containers() {
        let mut pod = json!({"metadata": {"name": "p", "labels": {"a": "1"}},
                             "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert!(remove_path(
            "Pod",
            &mut pod,
            &p(&["f:spec", "f:containers", "k:{\"name\":\"a\"}"])
        ));
        assert_eq!(pod["spec"]["containers"], json!([{"name": "b"}]));
        assert!(remove_path(
            "Pod",
            &mut pod,
            &p(&["f:metadata", "f:labels", "f:a"])
        ));
        assert_eq!(pod["metadata"], json!({"name": "p"}));
        assert!(!remove_path("Pod", &mut pod, &p(&["f:nothing", "f:here"])));
    }

    #[test]
    fn malformed_fields_v1_is_read_tolerantly() {
        let set = from_fields_v1(&json!({"f:data": {"f:a": {}, "f:b": 3}, "f:x": "y"}));
        assert_eq!(set.len(), 3);
        assert!(from_fields_v1(&json!([1, 2])).is_empty());
    }

    #[test]
    fn key_field_detection_and_depth() {
        assert!(is_item_key_field(&p(&[
            "f:containers",
            "k:{\"name\":\"a\"}",
            "f:name"
        ])));
        assert!(!is_item_key_field(&p(&[
            "f:containers",
            "k:{\"name\":\"a\"}",
            "f:image"
        ])));
        assert_eq!(depth(&json!({"a": [{"b": 1}]})), 4);
    }
}
