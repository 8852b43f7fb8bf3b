//! The schema definitions devcluster serves: k8s-openapi's schemas (generated once into
//! `devcluster/openapi/definitions.json` by `devcluster/openapi/generate`), completed at start
//! with what the real API adds: list kinds, `x-kubernetes-group-version-kind`, and the patch
//! strategies clients compute strategic merge patches with.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::patch_strategies::PATCH_STRATEGIES;
use crate::resources::{RESOURCES, ResourceType};

/// Schemas in the OpenAPI v3 form: references are `#/components/schemas/NAME`.
pub type Definitions = BTreeMap<String, Value>;

/// Where schema references point in OpenAPI v3 documents.
pub const V3_REF_PREFIX: &str = "#/components/schemas/";

const GENERATED: &str = include_str!("../../openapi/definitions.json");

const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("devcluster/openapi/definitions.json is not a JSON object of schemas: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("devcluster/openapi/definitions.json has no schema {definition} (regenerate it)")]
    Missing { definition: String },
}

/// The definition name of a served kind, e.g. `io.k8s.api.apps.v1.Deployment`.
pub fn definition_name(rt: &ResourceType) -> String {
    format!("{}{}", package(rt), rt.kind)
}

/// The definition name of a served kind's list, e.g. `io.k8s.api.core.v1.ConfigMapList`.
pub fn list_definition_name(rt: &ResourceType) -> String {
    format!("{}{}", package(rt), rt.list_kind())
}

/// `io.k8s.api.GROUP.VERSION.`: the Go package of the built-in types, by the group's first label.
fn package(rt: &ResourceType) -> String {
    let group = rt.group.split('.').next().unwrap_or_default();
    let group = if group.is_empty() { "core" } else { group };
    format!("io.k8s.api.{group}.{}.", rt.version)
}

/// A reference to a definition; with siblings (a description) it is wrapped in `allOf`, as the
/// real v3 documents do, since OpenAPI 3.0 ignores the siblings of a `$ref`.
pub fn reference(definition: &str) -> Value {
    json!({"$ref": format!("{V3_REF_PREFIX}{definition}")})
}

fn described_reference(definition: &str, description: &str) -> Value {
    json!({"allOf": [reference(definition)], "description": description})
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!([{"group": group, "kind": kind, "version": version}])
}

/// Builds the complete set of definitions.
pub fn build() -> Result<Definitions, SchemaError> {
    let mut definitions: Definitions = serde_json::from_str(GENERATED)?;
    for rt in RESOURCES {
        let name = definition_name(rt);
        let schema = definitions
            .get_mut(&name)
            .and_then(Value::as_object_mut)
            .ok_or_else(|| SchemaError::Missing {
                definition: name.clone(),
            })?;
        schema.insert(
            "x-kubernetes-group-version-kind".into(),
            gvk(rt.group, rt.version, rt.kind),
        );
        definitions.insert(list_definition_name(rt), list_schema(rt, &name));
    }
    if let Some(status) = definitions.get_mut(STATUS).and_then(Value::as_object_mut) {
        status.insert(
            "x-kubernetes-group-version-kind".into(),
            gvk("", "v1", "Status"),
        );
    }
    for strategy in PATCH_STRATEGIES {
        let property = definitions
            .get_mut(strategy.definition)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(strategy.property))
            .and_then(Value::as_object_mut)
            .ok_or_else(|| SchemaError::Missing {
                definition: format!("{}.{}", strategy.definition, strategy.property),
            })?;
        property.insert(
            "x-kubernetes-patch-strategy".into(),
            json!(strategy.strategy),
        );
        if let Some(key) = strategy.merge_key {
            property.insert("x-kubernetes-patch-merge-key".into(), json!(key));
        }
    }
    describe_string_like_types(&mut definitions);
    Ok(definitions)
}

/// IntOrString and Quantity are written as strings (or numbers) on the wire; the real documents
/// give them type string so tools such as `kubectl explain` show a type.
fn describe_string_like_types(definitions: &mut Definitions) {
    for (name, format) in [
        (
            "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
            Some("int-or-string"),
        ),
        ("io.k8s.apimachinery.pkg.api.resource.Quantity", None),
    ] {
        if let Some(schema) = definitions.get_mut(name).and_then(Value::as_object_mut) {
            schema.insert("type".into(), json!("string"));
            if let Some(format) = format {
                schema.insert("format".into(), json!(format));
            }
        }
    }
}

fn list_schema(rt: &ResourceType, item_definition: &str) -> Value {
    let plural = rt.plural;
    json!({
        "description": format!("{} is a list of {}.", rt.list_kind(), rt.kind),
        "type": "object",
        "properties": {
            "apiVersion": {
                "description": "APIVersion defines the versioned schema of this representation of an object.",
                "type": "string",
            },
            "items": {
                "description": format!("List of {plural}."),
                "type": "array",
                "items": reference(item_definition),
            },
            "kind": {
                "description": "Kind is a string value representing the REST resource this object represents.",
                "type": "string",
            },
            "metadata": described_reference(LIST_META, "Standard list metadata."),
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": gvk(rt.group, rt.version, &rt.list_kind()),
    })
}

/// Every definition name referenced (as `#/components/schemas/NAME`) anywhere inside `value`.
pub fn references_in(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields {
                if key == "$ref" {
                    if let Some(name) = field.as_str().and_then(|r| r.strip_prefix(V3_REF_PREFIX)) {
                        out.insert(name.to_string());
                    }
                } else {
                    references_in(field, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references_in(item, out)),
        _ => {}
    }
}

/// The definitions `roots` name plus everything they reference, transitively.
pub fn closure(definitions: &Definitions, roots: BTreeSet<String>) -> Map<String, Value> {
    let mut pending: Vec<String> = roots.into_iter().collect();
    let mut out = Map::new();
    while let Some(name) = pending.pop() {
        if out.contains_key(&name) {
            continue;
        }
        let Some(schema) = definitions.get(&name) else {
            continue;
        };
        let mut referenced = BTreeSet::new();
        references_in(schema, &mut referenced);
        pending.extend(referenced.into_iter().filter(|r| !out.contains_key(r)));
        out.insert(name, schema.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built() -> Definitions {
        build().expect("definitions build")
    }

    #[test]
    fn every_served_kind_and_its_list_has_a_schema_with_its_gvk() {
        let definitions = built();
        for rt in RESOURCES {
            for (name, kind) in [
                (definition_name(rt), rt.kind.to_string()),
                (list_definition_name(rt), rt.list_kind()),
            ] {
                let schema = definitions.get(&name).unwrap_or_else(|| panic!("{name}"));
                assert_eq!(
                    schema["x-kubernetes-group-version-kind"],
                    gvk(rt.group, rt.version, &kind),
                    "{name}"
                );
            }
        }
        assert!(definitions.contains_key("io.k8s.api.events.v1.Event"));
        assert!(definitions.contains_key("io.k8s.api.core.v1.Event"));
    }

    #[test]
    fn containers_merge_by_name_and_ports_by_container_port() {
        let definitions = built();
        let containers = &definitions["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        let ports = &definitions["io.k8s.api.core.v1.Container"]["properties"]["ports"];
        assert_eq!(ports["x-kubernetes-patch-merge-key"], "containerPort");
        let strategy = &definitions["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"];
        assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
        assert!(strategy.get("x-kubernetes-patch-merge-key").is_none());
    }

    #[test]
    fn every_reference_resolves() {
        let definitions = built();
        let mut referenced = BTreeSet::new();
        for schema in definitions.values() {
            references_in(schema, &mut referenced);
        }
        let missing: Vec<_> = referenced
            .iter()
            .filter(|r| !definitions.contains_key(*r))
            .collect();
        assert!(missing.is_empty(), "unresolved: {missing:?}");
    }

    #[test]
    fn closure_follows_references_transitively() {
        let definitions = built();
        let roots = BTreeSet::from(["io.k8s.api.apps.v1.Deployment".to_string()]);
        let closure = closure(&definitions, roots);
        // Deployment -> DeploymentSpec -> PodTemplateSpec -> PodSpec -> Container -> EnvVar.
        assert!(closure.contains_key("io.k8s.api.core.v1.EnvVar"));
        assert!(closure.contains_key("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
        assert!(!closure.contains_key("io.k8s.api.core.v1.ConfigMap"));
    }
}
