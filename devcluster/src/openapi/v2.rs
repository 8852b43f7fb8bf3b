//! Renders the OpenAPI v3 paths and schemas as one Swagger 2.0 document (`/openapi/v2`), the
//! form older clients read: references under `#/definitions/`, request bodies as `in: body`
//! parameters, media types in `consumes` / `produces`.

use serde_json::{Map, Value, json};

use super::schemas::{Definitions, V3_REF_PREFIX};

const V2_REF_PREFIX: &str = "#/definitions/";

/// The Swagger 2.0 document of `paths` (v3 path items) and `definitions`.
pub fn document(info: &Value, paths: &Map<String, Value>, definitions: &Definitions) -> Value {
    let paths: Map<String, Value> = paths
        .iter()
        .map(|(path, item)| (path.clone(), path_item(item)))
        .collect();
    let definitions: Map<String, Value> = definitions
        .iter()
        .map(|(name, schema)| (name.clone(), schema_v2(schema)))
        .collect();
    json!({
        "swagger": "2.0",
        "info": info,
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {
            "BearerToken": {"type": "apiKey", "name": "authorization", "in": "header",
                "description": "Bearer Token authentication"}
        },
        "security": [{"BearerToken": []}],
    })
}

/// A schema with v2 references; `allOf` around a single reference becomes a `$ref` with
/// siblings, as in the real v2 document.
fn schema_v2(schema: &Value) -> Value {
    match schema {
        Value::Object(fields) => {
            let mut out = Map::new();
            for (key, value) in fields {
                match (key.as_str(), value) {
                    ("$ref", Value::String(r)) => {
                        let name = r.strip_prefix(V3_REF_PREFIX).unwrap_or(r);
                        out.insert(key.clone(), json!(format!("{V2_REF_PREFIX}{name}")));
                    }
                    ("allOf", Value::Array(parts))
                        if parts.len() == 1 && parts[0].get("$ref").is_some() =>
                    {
                        if let Value::Object(inner) = schema_v2(&parts[0]) {
                            out.extend(inner);
                        }
                    }
                    _ => {
                        out.insert(key.clone(), schema_v2(value));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(schema_v2).collect()),
        other => other.clone(),
    }
}

/// A v3 parameter (`schema: {type}`) as a v2 one (`type` inline).
fn parameter(p: &Value) -> Value {
    let Value::Object(fields) = p else {
        return p.clone();
    };
    let mut out = Map::new();
    for (key, value) in fields {
        if key == "schema" {
            if let Value::Object(schema) = value {
                out.extend(schema.clone());
            }
        } else {
            out.insert(key.clone(), value.clone());
        }
    }
    Value::Object(out)
}

fn parameters(list: Option<&Value>) -> Vec<Value> {
    list.and_then(Value::as_array)
        .map(|ps| ps.iter().map(parameter).collect())
        .unwrap_or_default()
}

fn path_item(item: &Value) -> Value {
    let mut out = Map::new();
    let Value::Object(fields) = item else {
        return item.clone();
    };
    for (key, value) in fields {
        if key == "parameters" {
            out.insert(key.clone(), Value::Array(parameters(Some(value))));
        } else {
            out.insert(key.clone(), operation(value));
        }
    }
    Value::Object(out)
}

fn operation(op: &Value) -> Value {
    let Value::Object(fields) = op else {
        return op.clone();
    };
    let mut out = Map::new();
    let mut params = Vec::new();
    let mut consumes: Vec<String> = Vec::new();
    let mut produces: Vec<String> = Vec::new();
    if let Some(body) = fields.get("requestBody") {
        let content = body.get("content").and_then(Value::as_object);
        let schema = content
            .and_then(|c| c.values().next())
            .and_then(|media| media.get("schema"))
            .map(schema_v2)
            .unwrap_or_else(|| json!({"type": "object"}));
        params.push(json!({
            "name": "body",
            "in": "body",
            "required": body.get("required").cloned().unwrap_or(json!(false)),
            "schema": schema,
        }));
        consumes.extend(content.into_iter().flat_map(|c| c.keys().cloned()));
    }
    params.extend(parameters(fields.get("parameters")));
    let mut responses = Map::new();
    if let Some(Value::Object(codes)) = fields.get("responses") {
        for (code, response) in codes {
            let mut r =
                json!({"description": response.get("description").cloned().unwrap_or(json!(""))});
            if let Some(Value::Object(content)) = response.get("content") {
                for (media, body) in content {
                    if !produces.contains(media) {
                        produces.push(media.clone());
                    }
                    if let Some(schema) = body.get("schema") {
                        r["schema"] = schema_v2(schema);
                    }
                }
            }
            responses.insert(code.clone(), r);
        }
    }
    for (key, value) in fields {
        if !matches!(key.as_str(), "requestBody" | "parameters" | "responses") {
            out.insert(key.clone(), value.clone());
        }
    }
    if !consumes.is_empty() {
        out.insert("consumes".into(), json!(consumes));
    }
    out.insert("produces".into(), json!(produces));
    out.insert("schemes".into(), json!(["https"]));
    if !params.is_empty() {
        out.insert("parameters".into(), Value::Array(params));
    }
    out.insert("responses".into(), Value::Object(responses));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_bodies_take_the_v2_form() {
        let v3_paths: Map<String, Value> = serde_json::from_value(json!({
            "/api/v1/namespaces/{namespace}/configmaps": {
                "parameters": [{"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}}],
                "post": {
                    "operationId": "createCoreV1NamespacedConfigMap",
                    "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                    "requestBody": {"required": true, "content": {"*/*": {"schema": {"$ref": "#/components/schemas/io.k8s.api.core.v1.ConfigMap"}}}},
                    "responses": {"201": {"description": "Created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/io.k8s.api.core.v1.ConfigMap"}}}}},
                }
            }
        }))
        .expect("paths");
        let definitions = Definitions::from([(
            "io.k8s.api.core.v1.ConfigMap".to_string(),
            json!({"properties": {"metadata": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}], "description": "meta"}}}),
        )]);
        let doc = document(&json!({"title": "Kubernetes"}), &v3_paths, &definitions);
        assert_eq!(doc["swagger"], "2.0");
        let item = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps"];
        assert_eq!(item["parameters"][0]["type"], "string");
        let post = &item["post"];
        assert_eq!(post["parameters"][0]["in"], "body");
        assert_eq!(
            post["parameters"][0]["schema"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.ConfigMap"
        );
        assert_eq!(post["parameters"][1]["name"], "fieldValidation");
        assert_eq!(post["parameters"][1]["type"], "string");
        assert_eq!(post["consumes"], json!(["*/*"]));
        assert_eq!(post["produces"], json!(["application/json"]));
        assert_eq!(
            post["responses"]["201"]["schema"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.ConfigMap"
        );
        let meta = &doc["definitions"]["io.k8s.api.core.v1.ConfigMap"]["properties"]["metadata"];
        assert_eq!(
            meta,
            &json!({"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "description": "meta"})
        );
    }
}
