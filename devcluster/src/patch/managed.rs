//! `metadata.managedFields`: reading and writing the per-manager entries.

use serde_json::{Map, Value, json};

use super::fieldset::{FieldSet, from_fields_v1, to_fields_v1};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// What makes two entries distinct managers, as in the real server's manager identifier.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ManagerId {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    pub subresource: Option<String>,
}

impl ManagerId {
    /// How conflicts name a manager: `"kubectl" using v1` for Update managers (the real server
    /// names the version only for those), plus the subresource if any.
    pub fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            s.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == Operation::Update {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

#[derive(Debug, Clone)]
pub struct ManagedEntry {
    pub id: ManagerId,
    pub time: Option<String>,
    pub fields: FieldSet,
}

/// The entries of `obj`'s managedFields; entries that cannot be read are skipped.
pub fn read(obj: &Value) -> Vec<ManagedEntry> {
    let Some(entries) = obj
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let mut out: Vec<ManagedEntry> = Vec::new();
    for e in entries {
        let text = |key: &str| e.get(key).and_then(Value::as_str).map(str::to_string);
        let operation = match text("operation").as_deref() {
            Some("Apply") => Operation::Apply,
            Some("Update") => Operation::Update,
            _ => continue,
        };
        let Some(manager) = text("manager") else {
            continue;
        };
        let id = ManagerId {
            manager,
            operation,
            api_version: text("apiVersion").unwrap_or_default(),
            subresource: text("subresource").filter(|s| !s.is_empty()),
        };
        let fields = e.get("fieldsV1").map(from_fields_v1).unwrap_or_default();
        // Two entries for one manager would make ownership ambiguous: merge them.
        match out.iter_mut().find(|x| x.id == id) {
            Some(existing) => existing.fields.extend(fields),
            None => out.push(ManagedEntry {
                id,
                time: text("time"),
                fields,
            }),
        }
    }
    out
}

/// Replaces `obj`'s managedFields with `entries` (those with an empty set are dropped), in the
/// real server's order: Apply before Update, then by time and manager.
pub fn write(obj: &mut Value, mut entries: Vec<ManagedEntry>) {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|a, b| {
        (
            a.id.operation,
            &a.time,
            &a.id.manager,
            &a.id.api_version,
            &a.id.subresource,
        )
            .cmp(&(
                b.id.operation,
                &b.time,
                &b.id.manager,
                &b.id.api_version,
                &b.id.subresource,
            ))
    });
    let Value::Object(root) = obj else { return };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    let Value::Object(meta) = meta else { return };
    if entries.is_empty() {
        meta.remove("managedFields");
        return;
    }
    let list: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut entry = json!({
                "manager": e.id.manager,
                "operation": e.id.operation.as_str(),
                "apiVersion": e.id.api_version,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if let Some(time) = &e.time {
                entry["time"] = Value::String(time.clone());
            }
            if let Some(sub) = &e.id.subresource {
                entry["subresource"] = Value::String(sub.clone());
            }
            entry
        })
        .collect();
    meta.insert("managedFields".to_string(), Value::Array(list));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_malformed_ones_are_skipped() {
        let mut obj = json!({"metadata": {"name": "x", "managedFields": [
            {"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
             "time": "2024-01-01T00:00:00Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:data": {".": {}, "f:a": {}}}},
            {"manager": "ctl", "operation": "Apply", "apiVersion": "v1", "subresource": "status",
             "fieldsV1": {"f:status": {"f:phase": {}}}},
            {"operation": "Apply"},
            "junk"
        ]}});
        let entries = read(&obj);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].id.describe(), "\"kubectl\" using v1");
        assert_eq!(
            entries[1].id.describe(),
            "\"ctl\" with subresource \"status\""
        );
        write(&mut obj, entries);
        let written = &obj["metadata"]["managedFields"];
        // Apply sorts first.
        assert_eq!(written[0]["manager"], "ctl");
        assert_eq!(written[0]["subresource"], "status");
        assert_eq!(
            written[1]["fieldsV1"],
            json!({"f:data": {".": {}, "f:a": {}}})
        );
        assert_eq!(written[1]["fieldsType"], "FieldsV1");
        assert_eq!(written[1]["time"], "2024-01-01T00:00:00Z");

        write(&mut obj, Vec::new());
        assert!(obj["metadata"].get("managedFields").is_none());
    }
}
