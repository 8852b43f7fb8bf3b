//! JSON patch (RFC 6902): a list of add/remove/replace/move/copy/test operations addressed by
//! JSON pointers (RFC 6901).

use serde_json::Value;

use super::PatchError;

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Add { path: String, value: Value },
    Remove { path: String },
    Replace { path: String, value: Value },
    Move { from: String, path: String },
    Copy { from: String, path: String },
    Test { path: String, value: Value },
}

impl Op {
    fn describe(&self) -> String {
        match self {
            Op::Add { path, .. } => format!("add at {path:?}"),
            Op::Remove { path } => format!("remove at {path:?}"),
            Op::Replace { path, .. } => format!("replace at {path:?}"),
            Op::Move { from, path } => format!("move from {from:?} to {path:?}"),
            Op::Copy { from, path } => format!("copy from {from:?} to {path:?}"),
            Op::Test { path, .. } => format!("test at {path:?}"),
        }
    }
}

/// Parses and applies a JSON patch body to `doc`. A malformed patch is a bad request; an
/// operation that cannot be applied (missing path, failed test) makes the object invalid, as in
/// the real server (422).
pub fn apply_json_patch(doc: &Value, body: &Value) -> Result<Value, PatchError> {
    let ops = parse(body)?;
    let mut doc = doc.clone();
    for (i, op) in ops.iter().enumerate() {
        run(&mut doc, op).map_err(|why| {
            PatchError::Invalid(format!(
                "json patch operation {i} ({}) failed: {why}",
                op.describe()
            ))
        })?;
    }
    Ok(doc)
}

fn parse(body: &Value) -> Result<Vec<Op>, PatchError> {
    let Value::Array(items) = body else {
        return Err(PatchError::BadRequest(
            "a json patch must be a JSON array of operations".to_string(),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            parse_op(item).map_err(|why| {
                PatchError::BadRequest(format!("json patch operation {i} is malformed: {why}"))
            })
        })
        .collect()
}

fn parse_op(item: &Value) -> Result<Op, String> {
    let Value::Object(fields) = item else {
        return Err("not an object".to_string());
    };
    let text = |name: &str| -> Result<String, String> {
        match fields.get(name) {
            Some(Value::String(s)) => {
                // Validate the pointer syntax up front so errors name the right cause.
                parse_pointer(s)?;
                Ok(s.clone())
            }
            Some(_) => Err(format!("{name:?} must be a string")),
            None => Err(format!("missing {name:?}")),
        }
    };
    let value = || -> Result<Value, String> {
        fields
            .get("value")
            .cloned()
            .ok_or_else(|| "missing \"value\"".to_string())
    };
    let op = match fields.get("op") {
        Some(Value::String(op)) => op.as_str(),
        Some(_) => return Err("\"op\" must be a string".to_string()),
        None => return Err("missing \"op\"".to_string()),
    };
    Ok(match op {
        "add" => Op::Add {
            path: text("path")?,
            value: value()?,
        },
        "remove" => Op::Remove {
            path: text("path")?,
        },
        "replace" => Op::Replace {
            path: text("path")?,
            value: value()?,
        },
        "move" => Op::Move {
            from: text("from")?,
            path: text("path")?,
        },
        "copy" => Op::Copy {
            from: text("from")?,
            path: text("path")?,
        },
        "test" => Op::Test {
            path: text("path")?,
            value: value()?,
        },
        other => return Err(format!("unknown op {other:?}")),
    })
}

/// The reference tokens of a pointer, unescaped.
fn parse_pointer(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!("pointer {pointer:?} must start with \"/\""));
    };
    rest.split('/')
        .map(|token| {
            let mut out = String::with_capacity(token.len());
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => out.push('~'),
                    Some('1') => out.push('/'),
                    _ => return Err(format!("pointer {pointer:?} has a bad escape")),
                }
            }
            Ok(out)
        })
        .collect()
}

/// An array index token: decimal without leading zeros.
fn parse_index(token: &str) -> Result<usize, String> {
    let valid = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    if !valid {
        return Err(format!("{token:?} is not an array index"));
    }
    token
        .parse()
        .map_err(|_| format!("{token:?} is not an array index"))
}

fn resolve<'a>(doc: &'a Value, tokens: &[String]) -> Result<&'a Value, String> {
    let mut at = doc;
    for token in tokens {
        at = match at {
            Value::Object(m) => m.get(token).ok_or_else(|| format!("no field {token:?}"))?,
            Value::Array(a) => {
                let i = parse_index(token)?;
                a.get(i)
                    .ok_or_else(|| format!("index {i} is out of range (length {})", a.len()))?
            }
            _ => return Err(format!("cannot descend into a scalar at {token:?}")),
        };
    }
    Ok(at)
}

fn resolve_mut<'a>(doc: &'a mut Value, tokens: &[String]) -> Result<&'a mut Value, String> {
    let mut at = doc;
    for token in tokens {
        at = match at {
            Value::Object(m) => m
                .get_mut(token)
                .ok_or_else(|| format!("no field {token:?}"))?,
            Value::Array(a) => {
                let len = a.len();
                let i = parse_index(token)?;
                a.get_mut(i)
                    .ok_or_else(|| format!("index {i} is out of range (length {len})"))?
            }
            _ => return Err(format!("cannot descend into a scalar at {token:?}")),
        };
    }
    Ok(at)
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let tokens = parse_pointer(path)?;
    let Some((last, parent)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match resolve_mut(doc, parent)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            let i = if last == "-" {
                a.len()
            } else {
                parse_index(last)?
            };
            if i > a.len() {
                return Err(format!("index {i} is out of range (length {})", a.len()));
            }
            a.insert(i, value);
            Ok(())
        }
        _ => Err("the parent is not an object or array".to_string()),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let tokens = parse_pointer(path)?;
    let Some((last, parent)) = tokens.split_last() else {
        return Err("cannot remove the whole document".to_string());
    };
    match resolve_mut(doc, parent)? {
        Value::Object(m) => m.remove(last).ok_or_else(|| format!("no field {last:?}")),
        Value::Array(a) => {
            let i = parse_index(last)?;
            if i >= a.len() {
                return Err(format!("index {i} is out of range (length {})", a.len()));
            }
            Ok(a.remove(i))
        }
        _ => Err("the parent is not an object or array".to_string()),
    }
}

fn run(doc: &mut Value, op: &Op) -> Result<(), String> {
    match op {
        Op::Add { path, value } => add(doc, path, value.clone()),
        Op::Remove { path } => remove(doc, path).map(drop),
        Op::Replace { path, value } => {
            let target = resolve_mut(doc, &parse_pointer(path)?)?;
            *target = value.clone();
            Ok(())
        }
        Op::Move { from, path } => {
            if from == path {
                return resolve(doc, &parse_pointer(from)?).map(drop);
            }
            if path.starts_with(&format!("{from}/")) {
                return Err("cannot move a value into one of its own children".to_string());
            }
            let value = remove(doc, from)?;
            add(doc, path, value)
        }
        Op::Copy { from, path } => {
            let value = resolve(doc, &parse_pointer(from)?)?.clone();
            add(doc, path, value)
        }
        Op::Test { path, value } => {
            let actual = resolve(doc, &parse_pointer(path)?)?;
            if actual == value {
                Ok(())
            } else {
                Err(format!("the value is {actual}, not {value}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patched(doc: Value, ops: Value) -> Result<Value, PatchError> {
        apply_json_patch(&doc, &ops)
    }

    #[test]
    fn all_six_operations() {
        let doc = json!({"data": {"a": "1", "x/y": "2", "m~n": "3"}, "list": [1, 2]});
        let out = patched(
            doc,
            json!([
                {"op": "test", "path": "/data/x~1y", "value": "2"},
                {"op": "test", "path": "/data/m~0n", "value": "3"},
                {"op": "add", "path": "/data/b", "value": "new"},
                {"op": "add", "path": "/list/-", "value": 3},
                {"op": "add", "path": "/list/0", "value": 0},
                {"op": "remove", "path": "/data/m~0n"},
                {"op": "replace", "path": "/data/a", "value": "one"},
                {"op": "move", "from": "/data/x~1y", "path": "/moved"},
                {"op": "copy", "from": "/list", "path": "/copied"}
            ]),
        )
        .expect("applies");
        assert_eq!(
            out,
            json!({"data": {"a": "one", "b": "new"}, "list": [0, 1, 2, 3],
                   "moved": "2", "copied": [0, 1, 2, 3]})
        );
    }

    #[test]
    fn a_failed_test_is_invalid_and_names_the_operation() {
        let err = patched(
            json!({"data": {"a": "1"}}),
            json!([{"op": "replace", "path": "/data/a", "value": "2"},
                   {"op": "test", "path": "/data/a", "value": "1"}]),
        )
        .expect_err("test fails");
        let PatchError::Invalid(msg) = err else {
            panic!("want Invalid, got {err:?}")
        };
        assert!(msg.contains("operation 1 (test at \"/data/a\")"), "{msg}");
    }

    #[test]
    fn missing_paths_fail_and_leave_nothing_half_applied() {
        for ops in [
            json!([{"op": "remove", "path": "/data/missing"}]),
            json!([{"op": "replace", "path": "/nothing", "value": 1}]),
            json!([{"op": "add", "path": "/no/parent", "value": 1}]),
            json!([{"op": "add", "path": "/list/5", "value": 1}]),
            json!([{"op": "add", "path": "/list/01", "value": 1}]),
            json!([{"op": "move", "from": "/data", "path": "/data/inner"}]),
            json!([{"op": "remove", "path": ""}]),
        ] {
            let err = patched(json!({"data": {}, "list": []}), ops.clone()).expect_err("fails");
            assert!(matches!(err, PatchError::Invalid(_)), "{ops}: {err:?}");
        }
    }

    #[test]
    fn malformed_patches_are_bad_requests() {
        for ops in [
            json!({"op": "add"}),
            json!([{"op": "frobnicate", "path": "/a"}]),
            json!([{"op": "add", "path": "/a"}]),
            json!([{"op": "add", "path": "a", "value": 1}]),
            json!([{"op": "add", "path": "/a~2", "value": 1}]),
            json!([{"op": "move", "path": "/a"}]),
            json!([7]),
        ] {
            let err = patched(json!({}), ops.clone()).expect_err("malformed");
            assert!(matches!(err, PatchError::BadRequest(_)), "{ops}: {err:?}");
        }
    }

    #[test]
    fn root_pointer_replaces_the_document() {
        assert_eq!(
            patched(
                json!({"a": 1}),
                json!([{"op": "replace", "path": "", "value": {"b": 2}}])
            )
            .expect("applies"),
            json!({"b": 2})
        );
    }
}
