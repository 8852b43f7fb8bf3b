//! How reads are answered, by the `Accept` header: objects as they are, `meta.k8s.io` Tables
//! (what `kubectl get` asks for: rows of printed cells, each with the object's metadata so
//! `-L` and `--show-labels` work), or `PartialObjectMetadata` (kube-rs `list_metadata`,
//! `watch_metadata`, `metadata_watcher`).

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::resources::ResourceType;
use crate::table;

/// What a Table row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

/// The form a read is answered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    Object,
    Table {
        /// `meta.k8s.io/v1` or `meta.k8s.io/v1beta1`, as asked.
        api_version: &'static str,
        include: IncludeObject,
    },
    Metadata {
        api_version: &'static str,
    },
}

/// What kind of read is being answered: `as=` names differ for lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadShape {
    Object,
    List,
    Watch,
}

/// One media range of an Accept header: the media type and its parameters.
fn media_ranges(accept: &str) -> impl Iterator<Item = (String, Vec<(String, String)>)> + '_ {
    accept.split(',').map(|range| {
        let mut parts = range.split(';');
        let mime = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let params = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        (mime, params)
    })
}

fn meta_version(params: &[(String, String)]) -> Option<&'static str> {
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    if get("g") != Some("meta.k8s.io") {
        return None;
    }
    match get("v") {
        Some("v1") => Some("meta.k8s.io/v1"),
        Some("v1beta1") => Some("meta.k8s.io/v1beta1"),
        _ => None,
    }
}

impl Representation {
    /// The first representation in `accept` this server can produce for `shape`. A client that
    /// only accepts representations it cannot have gets 406, like the real server.
    pub fn negotiate(
        accept: Option<&str>,
        include_object: Option<&str>,
        shape: ReadShape,
    ) -> Result<Representation, ApiError> {
        let include = match include_object {
            None | Some("") | Some("Metadata") => IncludeObject::Metadata,
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "includeObject must be None, Metadata or Object, got {other:?}"
                )));
            }
        };
        let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
            return Ok(Representation::Object);
        };
        let mut plain_accepted = false;
        for (mime, params) in media_ranges(accept) {
            let json_like = matches!(mime.as_str(), "application/json" | "application/*" | "*/*");
            let as_kind = params
                .iter()
                .find(|(k, _)| k == "as")
                .map(|(_, v)| v.as_str());
            let Some(as_kind) = as_kind else {
                // Plain objects: JSON, or anything else we answer in JSON anyway.
                plain_accepted = true;
                if json_like {
                    return Ok(Representation::Object);
                }
                continue;
            };
            if !json_like {
                continue;
            }
            let Some(api_version) = meta_version(&params) else {
                continue;
            };
            match (as_kind, shape) {
                ("Table", _) => {
                    return Ok(Representation::Table {
                        api_version,
                        include,
                    });
                }
                ("PartialObjectMetadata", ReadShape::Object | ReadShape::Watch)
                | ("PartialObjectMetadataList", ReadShape::List) => {
                    return Ok(Representation::Metadata { api_version });
                }
                _ => {}
            }
        }
        if plain_accepted {
            return Ok(Representation::Object);
        }
        Err(ApiError::new(
            406,
            "NotAcceptable",
            format!(
                "only the following media types are accepted: application/json, application/json;as=Table;v=v1;g=meta.k8s.io (got {accept})"
            ),
        ))
    }

    /// A single object (GET by name) in this representation.
    pub fn object(&self, rt: &ResourceType, obj: &Arc<Value>) -> Value {
        match *self {
            Representation::Object => (**obj).clone(),
            Representation::Table {
                api_version,
                include,
            } => table_of(
                rt,
                api_version,
                include,
                std::slice::from_ref(obj),
                json!({"resourceVersion": resource_version(obj)}),
            ),
            Representation::Metadata { api_version } => partial_metadata(api_version, obj),
        }
    }

    /// A list in this representation; `None` for plain objects (the caller streams those).
    /// `list_metadata` holds resourceVersion, continue and remainingItemCount.
    pub fn list(
        &self,
        rt: &ResourceType,
        items: &[Arc<Value>],
        list_metadata: Value,
    ) -> Option<Value> {
        match *self {
            Representation::Object => None,
            Representation::Table {
                api_version,
                include,
            } => Some(table_of(rt, api_version, include, items, list_metadata)),
            Representation::Metadata { api_version } => Some(json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": api_version,
                "metadata": list_metadata,
                "items": items.iter().map(|o| partial_metadata(api_version, o)).collect::<Vec<_>>(),
            })),
        }
    }

    /// The object of one watch event; `None` for plain objects (sent as they are). Like the
    /// real server, only the first Table of a watch carries the column definitions.
    pub fn watch_object(&self, rt: &ResourceType, obj: &Arc<Value>, first: bool) -> Option<Value> {
        if *self == Representation::Object {
            return None;
        }
        let mut out = self.object(rt, obj);
        if !first && let Some(columns) = out.get_mut("columnDefinitions") {
            *columns = Value::Null;
        }
        Some(out)
    }
}

fn resource_version(obj: &Value) -> &str {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn partial_metadata(api_version: &str, obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": api_version,
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| Value::Object(Map::new())),
    })
}

fn table_of(
    rt: &ResourceType,
    api_version: &str,
    include: IncludeObject,
    items: &[Arc<Value>],
    metadata: Value,
) -> Value {
    let now = jiff::Timestamp::now();
    let columns: Vec<Value> = table::columns(rt)
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.cell_type,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            })
        })
        .collect();
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            let mut row = json!({"cells": table::cells(rt, obj, now)});
            match include {
                // The real server writes the field, as null.
                IncludeObject::None => row["object"] = Value::Null,
                IncludeObject::Metadata => row["object"] = partial_metadata(api_version, obj),
                IncludeObject::Object => row["object"] = (**obj).clone(),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECTL_GET: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

    #[test]
    fn negotiation_picks_the_first_servable_range() {
        let table = Representation::negotiate(Some(KUBECTL_GET), None, ReadShape::List).unwrap();
        assert_eq!(
            table,
            Representation::Table {
                api_version: "meta.k8s.io/v1",
                include: IncludeObject::Metadata
            }
        );
        let kube_list = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
        assert_eq!(
            Representation::negotiate(Some(kube_list), None, ReadShape::List).unwrap(),
            Representation::Metadata {
                api_version: "meta.k8s.io/v1"
            }
        );
        // The list form does not answer a single-object read.
        assert_eq!(
            Representation::negotiate(Some(kube_list), None, ReadShape::Object)
                .unwrap_err()
                .code,
            406
        );
        for plain in [
            None,
            Some(""),
            Some("application/json"),
            Some("*/*"),
            Some("text/html"),
        ] {
            assert_eq!(
                Representation::negotiate(plain, None, ReadShape::Object).unwrap(),
                Representation::Object
            );
        }
        let unknown_group = "application/json;as=Table;v=v1;g=example.com";
        assert_eq!(
            Representation::negotiate(Some(unknown_group), None, ReadShape::List)
                .unwrap_err()
                .code,
            406
        );
        assert_eq!(
            Representation::negotiate(Some(KUBECTL_GET), Some("All"), ReadShape::List)
                .unwrap_err()
                .code,
            400
        );
    }
}
