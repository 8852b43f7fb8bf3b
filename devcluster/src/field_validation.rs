//! Server-side field validation (the `fieldValidation` query parameter), as the real server does
//! it for built-in types: unknown fields are never stored; `Strict` fails the request (400),
//! `Warn` (the default) answers with one `Warning` header per problem, `Ignore` says nothing.
//! Duplicate fields in a JSON create/update body count as problems too.
//!
//! Server-side apply is different: the apply configuration is converted to a typed value
//! whatever the directive, so an unknown field there always fails, with the real server's
//! `failed to create typed patch object` message.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::openapi::prune_unknown_fields;
use crate::patch::{ListShape, MergeMode, list_shape};
use crate::resources::ResourceType;

/// The `fieldValidation` directive of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Strict,
    #[default]
    Warn,
    Ignore,
}

impl FieldValidation {
    /// Parses the query parameter; `options_kind` (`CreateOptions`, `UpdateOptions`,
    /// `PatchOptions`) names the options in the real server's 422 for other values.
    pub fn parse(value: Option<&str>, options_kind: &str) -> Result<FieldValidation, ApiError> {
        match value.unwrap_or("") {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Strict" => Ok(FieldValidation::Strict),
            "Ignore" => Ok(FieldValidation::Ignore),
            other => Err(ApiError::new(
                422,
                "Invalid",
                format!(
                    "{options_kind}.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: {}: supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"",
                    Value::String(other.to_string())
                ),
            )),
        }
    }
}

/// What a decoded body held that the type does not (unknown and duplicate fields), in the
/// real server's wording: `unknown field "spec.foo"`, `duplicate field "data.x"`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<String>);

impl Problems {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Per the directive: an error for `Strict`, else the warnings to send (none for `Ignore`).
    /// `wrap` turns the strict decoding message into the request's error.
    pub fn resolve(
        self,
        directive: FieldValidation,
        wrap: impl FnOnce(String) -> ApiError,
    ) -> Result<Vec<String>, ApiError> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        match directive {
            FieldValidation::Strict => Err(wrap(format!(
                "strict decoding error: {}",
                self.0.join(", ")
            ))),
            FieldValidation::Warn => Ok(self.0),
            FieldValidation::Ignore => Ok(Vec::new()),
        }
    }
}

/// Removes `obj`'s unknown fields (as the server always does) and returns them as problems.
pub fn prune(rt: &ResourceType, obj: &mut Value) -> Problems {
    Problems(
        prune_unknown_fields(rt, obj)
            .into_iter()
            .map(|path| format!("unknown field {}", quote(&path)))
            .collect(),
    )
}

/// The error a create or update body fails strict decoding with.
pub fn decode_error(rt: &ResourceType, message: String) -> ApiError {
    ApiError::bad_request(format!(
        "{kind} in version {version} cannot be handled as a {kind}: {message}",
        kind = rt.kind,
        version = quote(rt.version)
    ))
}

/// Go's `%q` for the paths and names that appear here.
fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// The `Warning` header value for one warning: `299 - "text"`, quotes and backslashes escaped.
pub fn warning_header(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        match c {
            '\\' | '"' => {
                escaped.push('\\');
                escaped.push(c);
            }
            // A header value cannot hold control characters (a JSON key may).
            c if c.is_control() => escaped.extend(c.escape_default()),
            c => escaped.push(c),
        }
    }
    format!("299 - \"{escaped}\"")
}

/// Decodes a JSON body, noting each duplicated key with its path (`metadata.labels.app`,
/// `spec.containers[0].image`); the last value wins, as in Go.
pub fn decode_json(body: &[u8]) -> Result<(Value, Problems), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut duplicates = Vec::new();
    let value = NotingDuplicates {
        found: &mut duplicates,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((
        value,
        Problems(
            duplicates
                .into_iter()
                .map(|path| format!("duplicate field {}", quote(&path)))
                .collect(),
        ),
    ))
}

/// Builds a `Value`, recording duplicate keys as paths relative to the value being built
/// (parents prefix their key or index on the way out, so nothing is spent when there are none).
struct NotingDuplicates<'a> {
    found: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for NotingDuplicates<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NotingDuplicates<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let mut inner = Vec::new();
            let Some(item) = seq.next_element_seed(NotingDuplicates { found: &mut inner })? else {
                break;
            };
            for path in inner {
                self.found
                    .push(format!("[{}]{}", items.len(), continuation(&path)));
            }
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let mut inner = Vec::new();
            let value = map.next_value_seed(NotingDuplicates { found: &mut inner })?;
            for path in inner {
                self.found.push(format!("{key}{}", continuation(&path)));
            }
            if fields.contains_key(&key) {
                self.found.push(key.clone());
            }
            fields.insert(key, value);
        }
        Ok(Value::Object(fields))
    }
}

/// How a child's relative path continues its parent's: `.field` or `[index]`.
fn continuation(path: &str) -> String {
    if path.starts_with('[') {
        path.to_string()
    } else {
        format!(".{path}")
    }
}

/// Checks an apply configuration against the type's schema: any unknown field fails the
/// request, whatever `fieldValidation` says (the configuration becomes a typed value). The
/// real server answers 500 with this message (kubernetes/kubernetes#139253), naming the object
/// by the configuration's own namespace (empty when it has none), not the URL's.
pub fn check_apply_configuration(
    rt: &ResourceType,
    name: &str,
    body: &[u8],
) -> Result<(), ApiError> {
    // Unparseable bodies are the patch module's to report.
    let Some(config) = parse_apply_body(body) else {
        return Ok(());
    };
    let mut pruned = config.clone();
    let unknown = prune_unknown_fields(rt, &mut pruned);
    if unknown.is_empty() {
        return Ok(());
    }
    let errors: Vec<String> = unknown
        .iter()
        .map(|path| {
            format!(
                "{}: field not declared in schema",
                typed_path(rt.kind, &config, path)
            )
        })
        .collect();
    let detail = match errors.as_slice() {
        [one] => one.clone(),
        many => format!("errors:\n  {}", many.join("\n  ")),
    };
    let (group, version) = (rt.group, rt.version);
    let namespace = config
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    Err(ApiError::new(
        500,
        "",
        format!(
            "failed to create typed patch object ({namespace}/{name}; {group}/{version}, Kind={}): {detail}",
            rt.kind
        ),
    ))
}

fn parse_apply_body(body: &[u8]) -> Option<Value> {
    serde_json::from_slice(body)
        .ok()
        .or_else(|| serde_saphyr::from_slice(body).ok())
        .filter(Value::is_object)
}

/// Converts a pruned path (`spec.template.spec.containers[1].foo`) to the structured-merge-diff
/// form the real apply errors print: `.spec.template.spec.containers[name="b"].foo`.
fn typed_path(kind: &str, config: &Value, path: &str) -> String {
    let mut out = String::new();
    let mut names: Vec<String> = Vec::new();
    let mut here = Some(config);
    for part in path.split('.') {
        let (field, indexes) = match part.split_once('[') {
            Some((field, rest)) => (field, Some(rest)),
            None => (part, None),
        };
        out.push('.');
        out.push_str(field);
        names.push(field.to_string());
        here = here.and_then(|v| v.get(field));
        let Some(indexes) = indexes else { continue };
        for index in indexes.split('[') {
            let index = index.trim_end_matches(']');
            let item = index
                .parse::<usize>()
                .ok()
                .and_then(|i| here.and_then(|v| v.get(i)));
            out.push_str(&list_element(kind, &names, index, item));
            here = item;
        }
    }
    out
}

fn list_element(kind: &str, names: &[String], index: &str, item: Option<&Value>) -> String {
    match (list_shape(kind, names, MergeMode::Apply), item) {
        (ListShape::Map(keys), Some(Value::Object(fields))) => {
            let mut parts: Vec<String> = keys
                .iter()
                .filter_map(|k| {
                    let value = fields
                        .get(k.name)
                        .cloned()
                        .or_else(|| k.default.map(|d| Value::String(d.to_string())))?;
                    Some(format!("{}={value}", k.name))
                })
                .collect();
            parts.sort();
            format!("[{}]", parts.join(","))
        }
        (ListShape::Set, Some(value)) => format!("[={value}]"),
        _ => format!("[{index}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::lookup;
    use serde_json::json;

    #[test]
    fn duplicates_are_found_with_their_paths_and_the_last_value_wins() {
        let body = br#"{"metadata":{"name":"a","labels":{"x":"1","x":"2"}},
            "spec":{"containers":[{"name":"c","image":"a","image":"b"}]},"data":1,"data":2}"#;
        let (value, problems) = decode_json(body).unwrap();
        assert_eq!(value["metadata"]["labels"]["x"], "2");
        assert_eq!(value["data"], 2);
        assert_eq!(
            problems.0,
            vec![
                r#"duplicate field "metadata.labels.x""#,
                r#"duplicate field "spec.containers[0].image""#,
                r#"duplicate field "data""#,
            ]
        );
        let (value, problems) = decode_json(br#"{"a":[1,2.5,null,true,"s"]}"#).unwrap();
        assert_eq!(value, json!({"a": [1, 2.5, null, true, "s"]}));
        assert!(problems.is_empty());
        assert!(decode_json(b"{\"a\":1} x").is_err());
    }

    #[test]
    fn directives_fail_warn_or_ignore() {
        let problems = || {
            Problems(vec![
                "unknown field \"a\"".into(),
                "unknown field \"b\"".into(),
            ])
        };
        let err = problems()
            .resolve(FieldValidation::Strict, ApiError::bad_request)
            .unwrap_err();
        assert_eq!(
            err.message,
            r#"strict decoding error: unknown field "a", unknown field "b""#
        );
        assert_eq!(
            problems()
                .resolve(FieldValidation::Warn, ApiError::bad_request)
                .unwrap()
                .len(),
            2
        );
        assert!(
            problems()
                .resolve(FieldValidation::Ignore, ApiError::bad_request)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            FieldValidation::parse(Some("Loose"), "CreateOptions")
                .unwrap_err()
                .code,
            422
        );
        assert_eq!(
            warning_header(r#"unknown field "a\b""#),
            r#"299 - "unknown field \"a\\b\"""#
        );
    }

    #[test]
    fn apply_errors_name_list_items_by_key_like_the_real_server() {
        let deploy = lookup("apps", "v1", "deployments").expect("served");
        let body = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "x"}, {"name": "b", "image": "y", "imagePullPolicyy": "Always"}]}},
                "foo": 1}});
        let err =
            check_apply_configuration(deploy, "web", body.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.code, 500);
        assert_eq!(
            err.message,
            "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): errors:\n  .spec.foo: field not declared in schema\n  .spec.template.spec.containers[name=\"b\"].imagePullPolicyy: field not declared in schema"
        );
        let cm = lookup("", "v1", "configmaps").expect("served");
        let yaml = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\nfoo: bar\n";
        let err = check_apply_configuration(cm, "x", yaml).unwrap_err();
        assert_eq!(
            err.message,
            "failed to create typed patch object (/x; /v1, Kind=ConfigMap): .foo: field not declared in schema"
        );
        let ok = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  k: v\n";
        assert!(check_apply_configuration(cm, "x", ok).is_ok());
    }
}
