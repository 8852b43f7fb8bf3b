//! How each list of a served type merges: by key, as a set, or atomically (replaced whole).
//!
//! One table for both strategic merge patch (Kubernetes' `patchStrategy`/`patchMergeKey` struct
//! tags) and server-side apply (`+listType`/`+listMapKey`); the two differ in a few places, e.g.
//! container ports merge by `containerPort` in a strategic patch but by `containerPort` and
//! `protocol` in an apply. Lists not in the table are atomic, as unknown fields are in Kubernetes.

/// A field identifying an item of a keyed list, with the value the API server defaults it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyField {
    pub name: &'static str,
    pub default: Option<&'static str>,
}

/// How a list merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListShape {
    /// Replaced as a whole.
    Atomic,
    /// A list of scalars merged as a set (e.g. `metadata.finalizers`).
    Set,
    /// A list of objects merged item by item, identified by these fields (the first is the
    /// strategic merge key).
    Map(&'static [KeyField]),
}

/// Which merge is asking: the two use different tags of the same Go types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeMode {
    Strategic,
    Apply,
}

struct Rule {
    path: &'static str,
    strategic: ListShape,
    apply: ListShape,
}

const fn key(name: &'static str) -> KeyField {
    KeyField {
        name,
        default: None,
    }
}

const NAME: &[KeyField] = &[key("name")];
const UID: &[KeyField] = &[key("uid")];
const TYPE: &[KeyField] = &[key("type")];
const IP: &[KeyField] = &[key("ip")];
const MOUNT_PATH: &[KeyField] = &[key("mountPath")];
const DEVICE_PATH: &[KeyField] = &[key("devicePath")];
const TOPOLOGY_KEY: &[KeyField] = &[key("topologyKey")];
const TOPOLOGY_KEY_AND_WHEN: &[KeyField] = &[key("topologyKey"), key("whenUnsatisfiable")];
const CONTAINER_PORT: &[KeyField] = &[key("containerPort")];
const CONTAINER_PORT_AND_PROTOCOL: &[KeyField] = &[
    key("containerPort"),
    KeyField {
        name: "protocol",
        default: Some("TCP"),
    },
];
const PORT: &[KeyField] = &[key("port")];
const PORT_AND_PROTOCOL: &[KeyField] = &[
    key("port"),
    KeyField {
        name: "protocol",
        default: Some("TCP"),
    },
];

const fn same(path: &'static str, shape: ListShape) -> Rule {
    Rule {
        path,
        strategic: shape,
        apply: shape,
    }
}

/// Lists of an `ObjectMeta`, relative to it.
const OBJECT_META: &[Rule] = &[
    same("ownerReferences", ListShape::Map(UID)),
    same("finalizers", ListShape::Set),
];

/// Lists of a `PodSpec`, relative to it. `initContainers` and `ephemeralContainers` are looked
/// up as `containers` (same item type).
const POD_SPEC: &[Rule] = &[
    same("containers", ListShape::Map(NAME)),
    Rule {
        path: "containers.ports",
        strategic: ListShape::Map(CONTAINER_PORT),
        apply: ListShape::Map(CONTAINER_PORT_AND_PROTOCOL),
    },
    same("containers.env", ListShape::Map(NAME)),
    same("containers.volumeMounts", ListShape::Map(MOUNT_PATH)),
    same("containers.volumeDevices", ListShape::Map(DEVICE_PATH)),
    same("volumes", ListShape::Map(NAME)),
    same("imagePullSecrets", ListShape::Map(NAME)),
    same("hostAliases", ListShape::Map(IP)),
    Rule {
        path: "topologySpreadConstraints",
        strategic: ListShape::Map(TOPOLOGY_KEY),
        apply: ListShape::Map(TOPOLOGY_KEY_AND_WHEN),
    },
    same("resourceClaims", ListShape::Map(NAME)),
    same("schedulingGates", ListShape::Map(NAME)),
];

/// Lists at a fixed path of one kind (`*`: every kind), relative to the object.
const BY_KIND: &[(&str, Rule)] = &[
    ("*", same("status.conditions", ListShape::Map(TYPE))),
    (
        "Service",
        Rule {
            path: "spec.ports",
            strategic: ListShape::Map(PORT),
            apply: ListShape::Map(PORT_AND_PROTOCOL),
        },
    ),
    ("ServiceAccount", same("secrets", ListShape::Map(NAME))),
    (
        "Pod",
        same("status.resourceClaimStatuses", ListShape::Map(NAME)),
    ),
    (
        "Pod",
        Rule {
            path: "status.podIPs",
            strategic: ListShape::Map(IP),
            apply: ListShape::Atomic,
        },
    ),
    (
        "Pod",
        Rule {
            path: "status.hostIPs",
            strategic: ListShape::Map(IP),
            apply: ListShape::Atomic,
        },
    ),
];

/// Where an `ObjectMeta` sits in an object of `kind`.
fn object_meta_roots(kind: &str) -> &'static [&'static [&'static str]] {
    match kind {
        "Deployment" => &[&["metadata"], &["spec", "template", "metadata"]],
        _ => &[&["metadata"]],
    }
}

/// Where a `PodSpec` sits in an object of `kind`.
fn pod_spec_root(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "Pod" => Some(&["spec"]),
        "Deployment" => Some(&["spec", "template", "spec"]),
        _ => None,
    }
}

fn strip_root<'a>(path: &'a [String], root: &[&str]) -> Option<&'a [String]> {
    if path.len() < root.len() || path.iter().zip(root).any(|(a, b)| a != b) {
        return None;
    }
    Some(&path[root.len()..])
}

fn find(rules: &[Rule], relative: &str, mode: MergeMode) -> Option<ListShape> {
    rules
        .iter()
        .find(|r| r.path == relative)
        .map(|r| match mode {
            MergeMode::Strategic => r.strategic,
            MergeMode::Apply => r.apply,
        })
}

/// How the list at `path` (field names from the object root; list items add no name) of an
/// object of `kind` merges.
pub fn list_shape(kind: &str, path: &[String], mode: MergeMode) -> ListShape {
    for root in object_meta_roots(kind) {
        if let Some(rest) = strip_root(path, root)
            && let Some(shape) = find(OBJECT_META, &rest.join("."), mode)
        {
            return shape;
        }
    }
    if let Some(root) = pod_spec_root(kind)
        && let Some(rest) = strip_root(path, root)
        && let Some((first, tail)) = rest.split_first()
    {
        let first = match first.as_str() {
            "initContainers" | "ephemeralContainers" => "containers",
            other => other,
        };
        let mut relative = first.to_string();
        for name in tail {
            relative.push('.');
            relative.push_str(name);
        }
        if let Some(shape) = find(POD_SPEC, &relative, mode) {
            return shape;
        }
    }
    let joined = path.join(".");
    BY_KIND
        .iter()
        .filter(|(k, _)| *k == "*" || *k == kind)
        .find(|(_, r)| r.path == joined)
        .map(|(_, r)| match mode {
            MergeMode::Strategic => r.strategic,
            MergeMode::Apply => r.apply,
        })
        .unwrap_or(ListShape::Atomic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> Vec<String> {
        p.split('.').map(str::to_string).collect()
    }

    #[test]
    fn containers_merge_by_name_in_pods_and_deployment_templates() {
        for (kind, p) in [
            ("Pod", "spec.containers"),
            ("Pod", "spec.initContainers"),
            ("Deployment", "spec.template.spec.containers"),
            ("Deployment", "spec.template.spec.ephemeralContainers"),
        ] {
            assert_eq!(
                list_shape(kind, &path(p), MergeMode::Strategic),
                ListShape::Map(NAME),
                "{kind} {p}"
            );
        }
        // The same path in a type without a pod spec is just an unknown list.
        assert_eq!(
            list_shape("ConfigMap", &path("spec.containers"), MergeMode::Strategic),
            ListShape::Atomic
        );
    }

    #[test]
    fn ports_are_keyed_differently_by_strategic_patch_and_apply() {
        let p = path("spec.template.spec.containers.ports");
        assert_eq!(
            list_shape("Deployment", &p, MergeMode::Strategic),
            ListShape::Map(CONTAINER_PORT)
        );
        assert_eq!(
            list_shape("Deployment", &p, MergeMode::Apply),
            ListShape::Map(CONTAINER_PORT_AND_PROTOCOL)
        );
        assert_eq!(
            list_shape("Service", &path("spec.ports"), MergeMode::Strategic),
            ListShape::Map(PORT)
        );
    }

    #[test]
    fn metadata_lists_status_conditions_and_unknown_lists() {
        assert_eq!(
            list_shape("ConfigMap", &path("metadata.finalizers"), MergeMode::Apply),
            ListShape::Set
        );
        assert_eq!(
            list_shape(
                "Deployment",
                &path("spec.template.metadata.ownerReferences"),
                MergeMode::Strategic
            ),
            ListShape::Map(UID)
        );
        assert_eq!(
            list_shape("Deployment", &path("status.conditions"), MergeMode::Apply),
            ListShape::Map(TYPE)
        );
        for (kind, p) in [
            ("Role", "rules"),
            ("RoleBinding", "subjects"),
            ("Ingress", "spec.rules"),
            ("Pod", "spec.tolerations"),
            ("Pod", "spec.containers.args"),
        ] {
            assert_eq!(
                list_shape(kind, &path(p), MergeMode::Strategic),
                ListShape::Atomic,
                "{kind} {p}"
            );
        }
    }
}
