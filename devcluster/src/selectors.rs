//! Label and field selectors, parsed from their query-string form and matched against objects.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::error::ApiError;
use crate::resources::ResourceType;

#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed label selector such as `app=web,tier in (a,b),!legacy`. Empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
}

fn invalid_label_selector(selector: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "unable to parse requirement: invalid label selector \"{selector}\": {why}"
    ))
}

/// Label keys: optional DNS-subdomain prefix and `/`, then a name of up to 63 characters.
fn valid_label_key(key: &str) -> bool {
    let name = match key.rsplit_once('/') {
        Some((prefix, name)) => {
            if !is_dns_subdomain(prefix) {
                return false;
            }
            name
        }
        None => key,
    };
    valid_label_value(name) && !name.is_empty()
}

/// An RFC 1123 label: 1 to 63 lowercase alphanumerics or `-`, not starting or ending with `-`.
pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// An RFC 1123 subdomain: up to 253 characters of dot-separated [`is_dns_label`]s.
pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Label values: empty, or up to 63 alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
fn valid_label_value(v: &str) -> bool {
    if v.is_empty() {
        return true;
    }
    let bytes = v.as_bytes();
    v.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Result<Vec<&str>, &'static str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced parentheses");
                }
            }
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced parentheses");
    }
    parts.push(&s[start..]);
    Ok(parts)
}

fn parse_value_set(selector: &str, rest: &str) -> Result<BTreeSet<String>, ApiError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            invalid_label_selector(selector, "expected a parenthesised list of values")
        })?;
    let mut values = BTreeSet::new();
    for v in inner.split(',') {
        let v = v.trim();
        if !valid_label_value(v) {
            return Err(invalid_label_selector(
                selector,
                &format!("invalid value \"{v}\""),
            ));
        }
        values.insert(v.to_string());
    }
    Ok(values)
}

impl LabelSelector {
    pub fn parse(selector: &str) -> Result<LabelSelector, ApiError> {
        let mut requirements = Vec::new();
        if selector.trim().is_empty() {
            return Ok(LabelSelector { requirements });
        }
        let parts =
            split_top_level(selector).map_err(|why| invalid_label_selector(selector, why))?;
        for part in parts {
            let part = part.trim();
            if part.is_empty() {
                return Err(invalid_label_selector(selector, "empty requirement"));
            }
            // The trimmed `text` if `valid`, else an error naming it as the `what` it should be.
            let checked = |what: &str, text: &str, valid: fn(&str) -> bool| {
                let text = text.trim();
                if valid(text) {
                    Ok(text.to_string())
                } else {
                    Err(invalid_label_selector(
                        selector,
                        &format!("invalid {what} \"{text}\""),
                    ))
                }
            };
            let check_key = |key: &str| checked("key", key, valid_label_key);
            let check_value = |value: &str| checked("value", value, valid_label_value);
            let req = if let Some(key) = part.strip_prefix('!') {
                LabelRequirement::DoesNotExist(check_key(key)?)
            } else if let Some((k, v)) = part.split_once("!=") {
                LabelRequirement::NotEquals(check_key(k)?, check_value(v)?)
            } else if let Some((k, v)) = part.split_once("==") {
                LabelRequirement::Equals(check_key(k)?, check_value(v)?)
            } else if let Some((k, v)) = part.split_once('=') {
                LabelRequirement::Equals(check_key(k)?, check_value(v)?)
            } else if let Some((k, rest)) = split_keyword(part, "notin") {
                LabelRequirement::NotIn(check_key(k)?, parse_value_set(selector, rest)?)
            } else if let Some((k, rest)) = split_keyword(part, "in") {
                LabelRequirement::In(check_key(k)?, parse_value_set(selector, rest)?)
            } else {
                LabelRequirement::Exists(check_key(part)?)
            };
            requirements.push(req);
        }
        Ok(LabelSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.requirements.iter().all(|r| match r {
            LabelRequirement::Equals(k, v) => get(k) == Some(v.as_str()),
            LabelRequirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            LabelRequirement::In(k, vs) => get(k).is_some_and(|x| vs.contains(x)),
            LabelRequirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.contains(x)),
            LabelRequirement::Exists(k) => get(k).is_some(),
            LabelRequirement::DoesNotExist(k) => get(k).is_none(),
        })
    }
}

/// `key in (..)` / `key notin (..)`: the keyword must stand alone between key and list.
fn split_keyword<'a>(part: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let paren = part.find('(')?;
    let head = part[..paren].trim_end();
    let key = head.strip_suffix(keyword)?;
    if key.is_empty() || !key.ends_with(char::is_whitespace) {
        return None;
    }
    Some((key.trim(), &part[paren..]))
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldRequirement {
    path: Vec<String>,
    value: String,
    equal: bool,
    reading: Reading,
}

/// How a field label's value is read from the object (the real server's field sets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Reading {
    /// The value at the path; missing is "".
    #[default]
    Plain,
    /// A boolean that defaults to false (`spec.hostNetwork`).
    BoolOrFalse,
    /// A list of `{ip}` objects, joined with commas (`status.podIPs`).
    IpList,
}

/// Field labels every type accepts (the real server's default conversion).
const METADATA_LABELS: &[&str] = &["metadata.name", "metadata.namespace"];
const POD_LABELS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
];
const SECRET_LABELS: &[&str] = &["metadata.name", "metadata.namespace", "type"];
const NAMESPACE_LABELS: &[&str] = &["metadata.name", "status.phase"];

/// The field labels selectors of `rt` may use, as the real server allows them (anything else
/// is refused there, so it is refused here). Events have their own table, see
/// [`crate::store::events::field_label`].
pub fn supported_field_labels(rt: &ResourceType) -> &'static [&'static str] {
    match (rt.group, rt.kind) {
        ("", "Pod") => POD_LABELS,
        ("", "Secret") => SECRET_LABELS,
        ("", "Namespace") => NAMESPACE_LABELS,
        _ => METADATA_LABELS,
    }
}

/// The stored field a selector label of `rt` reads, or the real server's 400.
fn resolve_field_label(rt: &ResourceType, label: &str) -> Result<(String, Reading), ApiError> {
    if rt.kind == "Event" {
        return Ok((
            crate::store::events::field_label(rt, label)?,
            Reading::Plain,
        ));
    }
    if !supported_field_labels(rt).contains(&label) {
        return Err(ApiError::bad_request(format!(
            "field label not supported: {label}"
        )));
    }
    let reading = match (rt.kind, label) {
        ("Pod", "spec.hostNetwork") => Reading::BoolOrFalse,
        ("Pod", "status.podIPs") => Reading::IpList,
        _ => Reading::Plain,
    };
    Ok((label.to_string(), reading))
}

/// A parsed field selector: `a.b=x,c!=y`, matched on any dotted path of the object (missing = "").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    pub fn parse(selector: &str) -> Result<FieldSelector, ApiError> {
        let mut requirements = Vec::new();
        if selector.trim().is_empty() {
            return Ok(FieldSelector { requirements });
        }
        for part in selector.split(',') {
            let (field, value, equal) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, true)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector \"{selector}\": \"{part}\" is not of the form field=value or field!=value"
                )));
            };
            let field = field.trim();
            if field.is_empty() || field.split('.').any(str::is_empty) {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector \"{selector}\": empty field name in \"{part}\""
                )));
            }
            requirements.push(FieldRequirement {
                path: field.split('.').map(str::to_string).collect(),
                value: value.trim().to_string(),
                equal,
                reading: Reading::Plain,
            });
        }
        Ok(FieldSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Replaces each field label by the stored field it reads (`label_to_field` may refuse one).
    pub fn map_labels(
        mut self,
        label_to_field: impl Fn(&str) -> Result<String, ApiError>,
    ) -> Result<FieldSelector, ApiError> {
        for r in &mut self.requirements {
            let field = label_to_field(&r.path.join("."))?;
            r.path = field.split('.').map(str::to_string).collect();
        }
        Ok(self)
    }

    /// Restricts the labels to those the real server supports for `rt` (400 otherwise) and
    /// maps them to the stored fields they read.
    pub fn for_type(mut self, rt: &ResourceType) -> Result<FieldSelector, ApiError> {
        for r in &mut self.requirements {
            let (field, reading) = resolve_field_label(rt, &r.path.join("."))?;
            r.path = field.split('.').map(str::to_string).collect();
            r.reading = reading;
        }
        Ok(self)
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let found = r.path.iter().try_fold(obj, |v, seg| v.get(seg.as_str()));
            let actual = match (r.reading, found) {
                (Reading::IpList, Some(Value::Array(items))) => items
                    .iter()
                    .filter_map(|i| i.get("ip").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(","),
                (Reading::BoolOrFalse, None | Some(Value::Null)) => "false".to_string(),
                (_, Some(Value::String(s))) => s.clone(),
                (_, None | Some(Value::Null)) => String::new(),
                (_, Some(other)) => other.to_string(),
            };
            (actual == r.value) == r.equal
        })
    }
}

/// Both selectors of a list or watch request.
#[derive(Debug, Clone, Default)]
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Selectors, ApiError> {
        Ok(Selectors {
            labels: LabelSelector::parse(labels.unwrap_or(""))?,
            fields: FieldSelector::parse(fields.unwrap_or(""))?,
        })
    }

    /// Selectors of a request for `rt`: only the field labels the real server supports for the
    /// type, mapped to the stored form of its objects (Events: in either API's names).
    pub fn parse_for(
        rt: &ResourceType,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<Selectors, ApiError> {
        Ok(Selectors {
            labels: LabelSelector::parse(labels.unwrap_or(""))?,
            fields: FieldSelector::parse(fields.unwrap_or(""))?.for_type(rt)?,
        })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}, "involvedObject": {"kind": "Pod"}})
    }

    #[test]
    fn label_selector_operators() {
        let o = obj(json!({"app": "web", "tier": "front"}));
        let yes = [
            "app=web",
            "app==web",
            "app!=db",
            "tier in (front, back)",
            "env notin (prod)",
            "app",
            "!env",
            "app=web,tier",
            "",
        ];
        for s in yes {
            assert!(
                LabelSelector::parse(s).unwrap().matches(&o),
                "{s} should match"
            );
        }
        let no = [
            "app=db",
            "app!=web",
            "tier in (back)",
            "tier notin (front)",
            "env",
            "!app",
        ];
        for s in no {
            assert!(
                !LabelSelector::parse(s).unwrap().matches(&o),
                "{s} should not match"
            );
        }
    }

    #[test]
    fn malformed_label_selectors_are_rejected_with_the_selector_named() {
        for s in ["app in (a", "a=b=c,,", "bad key=x", "x in ()x"] {
            let err = LabelSelector::parse(s).unwrap_err();
            assert_eq!(err.code, 400);
            assert!(err.message.contains(s), "{} should name {s}", err.message);
        }
    }

    #[test]
    fn field_selector_matches_dotted_paths() {
        let o = obj(json!({}));
        assert!(FieldSelector::parse("metadata.name=a").unwrap().matches(&o));
        assert!(
            FieldSelector::parse("metadata.namespace!=other,involvedObject.kind=Pod")
                .unwrap()
                .matches(&o)
        );
        assert!(
            !FieldSelector::parse("involvedObject.kind=Node")
                .unwrap()
                .matches(&o)
        );
        assert!(
            FieldSelector::parse("involvedObject.uid=")
                .unwrap()
                .matches(&o)
        );
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}
