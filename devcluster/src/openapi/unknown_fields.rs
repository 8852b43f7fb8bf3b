//! Unknown fields: the real server decodes built-in types into Go structs, so a field the schema
//! does not declare (a typo such as `imagePullPolicyy`) is never stored. With
//! `fieldValidation=Strict` (kubectl's default) the request fails with 400, with `Warn` (the
//! server default) the response carries a `Warning` header, with `Ignore` it is dropped silently.
//! This module finds and removes such fields using the served schemas.

use serde_json::Value;

use super::schemas::{Definitions, V3_REF_PREFIX};

/// How far references are followed; the schemas are not recursive this deep, so this only guards
/// against a malformed definitions file.
const MAX_DEPTH: usize = 64;

/// Follows `$ref` and single-`allOf` wrappers to the schema that describes the value.
fn resolve<'a>(definitions: &'a Definitions, mut schema: &'a Value) -> Option<&'a Value> {
    for _ in 0..MAX_DEPTH {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            schema = definitions.get(reference.strip_prefix(V3_REF_PREFIX)?)?;
        } else if let Some([inner]) = schema
            .get("allOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        {
            schema = inner;
        } else {
            return Some(schema);
        }
    }
    None
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// Removes from `value` what `schema` does not declare, recording each removed field's path
/// (`spec.template.spec.containers[0].imagePullPolicyy`, as in the real server's messages).
pub fn prune(
    definitions: &Definitions,
    schema: &Value,
    value: &mut Value,
    path: &str,
    depth: usize,
    removed: &mut Vec<String>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let Some(schema) = resolve(definitions, schema) else {
        return;
    };
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    match value {
        Value::Object(fields) => {
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                let unknown: Vec<String> = fields
                    .keys()
                    .filter(|k| !properties.contains_key(*k))
                    .cloned()
                    .collect();
                for key in unknown {
                    fields.remove(&key);
                    removed.push(join(path, &key));
                }
                for (key, field) in fields.iter_mut() {
                    if let Some(field_schema) = properties.get(key) {
                        prune(
                            definitions,
                            field_schema,
                            field,
                            &join(path, key),
                            depth + 1,
                            removed,
                        );
                    }
                }
            } else if let Some(values) =
                schema.get("additionalProperties").filter(|s| s.is_object())
            {
                for (key, field) in fields.iter_mut() {
                    prune(
                        definitions,
                        values,
                        field,
                        &join(path, key),
                        depth + 1,
                        removed,
                    );
                }
            }
            // Otherwise an open object (FieldsV1, RawExtension): anything goes.
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune(
                        definitions,
                        item_schema,
                        item,
                        &format!("{path}[{i}]"),
                        depth + 1,
                        removed,
                    );
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::prune_unknown_fields;
    use serde_json::{Value, json};

    #[test]
    fn unknown_fields_are_pruned_and_reported_with_their_paths() {
        let deploy = crate::resources::lookup("apps", "v1", "deployments").expect("served");
        let mut object = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}, "colour": "red",
                "managedFields": [{"manager": "m", "fieldsV1": {"f:data": {"f:x": {}}}}]},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [
                        {"name": "a", "image": "nginx", "ports": [{"containerPort": 80}]},
                        {"name": "b", "image": "busybox", "imagePullPolicyy": "Always",
                            "resources": {"limits": {"cpu": "1"}}},
                    ]},
                },
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
            },
            "status": {"replicas": 1, "phase": "x"},
        });
        let mut expected = object.clone();
        let removed = prune_unknown_fields(deploy, &mut object);
        assert_eq!(
            removed,
            vec![
                "metadata.colour",
                "spec.template.spec.containers[1].imagePullPolicyy",
                "status.phase",
            ]
        );
        // Only those three went; maps, open objects and int-or-strings stay as they were.
        for pointer in [
            "/metadata/colour",
            "/spec/template/spec/containers/1/imagePullPolicyy",
            "/status/phase",
        ] {
            let (parent, field) = pointer.rsplit_once('/').expect("pointer");
            expected
                .pointer_mut(parent)
                .and_then(Value::as_object_mut)
                .expect("parent")
                .remove(field);
        }
        assert_eq!(object, expected);

        let cm = crate::resources::lookup("", "v1", "configmaps").expect("served");
        let mut object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
            "data": {"any-key": "v"}, "foo": "bar"});
        assert_eq!(prune_unknown_fields(cm, &mut object), vec!["foo"]);
        assert_eq!(object["data"], json!({"any-key": "v"}));
    }
}
