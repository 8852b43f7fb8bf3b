//! The strategic-merge-patch metadata of list and struct fields, as the real API describes it to
//! clients with `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key` (Go struct tags
//! `patchStrategy` / `patchMergeKey`). kubectl's client-side `apply` reads these to compute its
//! patches; the server's own table in `crate::patch` must name the same keys.

/// The patch behaviour of one property of one schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchStrategy {
    /// Definition name, e.g. `io.k8s.api.core.v1.PodSpec`.
    pub definition: &'static str,
    pub property: &'static str,
    /// `merge`, `retainKeys` or `merge,retainKeys`.
    pub strategy: &'static str,
    /// The key identifying list elements; None for lists of scalars merged as sets and for structs.
    pub merge_key: Option<&'static str>,
}

const fn merge(
    definition: &'static str,
    property: &'static str,
    merge_key: &'static str,
) -> PatchStrategy {
    PatchStrategy {
        definition,
        property,
        strategy: "merge",
        merge_key: Some(merge_key),
    }
}

/// The definition name of a core/v1 type.
macro_rules! core_v1 {
    ($name:literal) => {
        concat!("io.k8s.api.core.v1.", $name)
    };
}

/// Every patch strategy on the schemas reachable from the served types (Kubernetes 1.33).
pub static PATCH_STRATEGIES: &[PatchStrategy] = &[
    // ObjectMeta
    PatchStrategy {
        definition: "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        property: "finalizers",
        strategy: "merge",
        merge_key: None,
    },
    merge(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        "ownerReferences",
        "uid",
    ),
    // PodSpec
    PatchStrategy {
        strategy: "merge,retainKeys",
        ..merge(core_v1!("PodSpec"), "volumes", "name")
    },
    merge(core_v1!("PodSpec"), "initContainers", "name"),
    merge(core_v1!("PodSpec"), "containers", "name"),
    merge(core_v1!("PodSpec"), "ephemeralContainers", "name"),
    merge(core_v1!("PodSpec"), "imagePullSecrets", "name"),
    merge(core_v1!("PodSpec"), "hostAliases", "ip"),
    merge(
        core_v1!("PodSpec"),
        "topologySpreadConstraints",
        "topologyKey",
    ),
    PatchStrategy {
        strategy: "merge,retainKeys",
        ..merge(core_v1!("PodSpec"), "resourceClaims", "name")
    },
    merge(core_v1!("PodSpec"), "schedulingGates", "name"),
    // Container and EphemeralContainer
    merge(core_v1!("Container"), "ports", "containerPort"),
    merge(core_v1!("Container"), "env", "name"),
    merge(core_v1!("Container"), "volumeMounts", "mountPath"),
    merge(core_v1!("Container"), "volumeDevices", "devicePath"),
    merge(core_v1!("EphemeralContainer"), "ports", "containerPort"),
    merge(core_v1!("EphemeralContainer"), "env", "name"),
    merge(core_v1!("EphemeralContainer"), "volumeMounts", "mountPath"),
    merge(
        core_v1!("EphemeralContainer"),
        "volumeDevices",
        "devicePath",
    ),
    // PodStatus
    merge(core_v1!("PodStatus"), "conditions", "type"),
    merge(core_v1!("PodStatus"), "podIPs", "ip"),
    merge(core_v1!("PodStatus"), "hostIPs", "ip"),
    PatchStrategy {
        strategy: "merge,retainKeys",
        ..merge(core_v1!("PodStatus"), "resourceClaimStatuses", "name")
    },
    // Services, namespaces, service accounts
    merge(core_v1!("ServiceSpec"), "ports", "port"),
    merge(core_v1!("ServiceStatus"), "conditions", "type"),
    merge(core_v1!("NamespaceStatus"), "conditions", "type"),
    merge(core_v1!("ServiceAccount"), "secrets", "name"),
    // Deployments
    PatchStrategy {
        definition: "io.k8s.api.apps.v1.DeploymentSpec",
        property: "strategy",
        strategy: "retainKeys",
        merge_key: None,
    },
    merge("io.k8s.api.apps.v1.DeploymentStatus", "conditions", "type"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::{ListShape, MergeMode, list_shape};

    /// Where a definition sits in an object clients patch: (kind, path from the object root).
    fn location(definition: &str) -> Option<(&'static str, &'static [&'static str])> {
        Some(match definition {
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" => ("ConfigMap", &["metadata"]),
            "io.k8s.api.core.v1.PodSpec" => ("Pod", &["spec"]),
            "io.k8s.api.core.v1.Container" => ("Pod", &["spec", "containers"]),
            "io.k8s.api.core.v1.EphemeralContainer" => ("Pod", &["spec", "ephemeralContainers"]),
            "io.k8s.api.core.v1.PodStatus" => ("Pod", &["status"]),
            "io.k8s.api.core.v1.ServiceSpec" => ("Service", &["spec"]),
            "io.k8s.api.core.v1.ServiceStatus" => ("Service", &["status"]),
            "io.k8s.api.core.v1.NamespaceStatus" => ("Namespace", &["status"]),
            "io.k8s.api.core.v1.ServiceAccount" => ("ServiceAccount", &[]),
            "io.k8s.api.apps.v1.DeploymentStatus" => ("Deployment", &["status"]),
            _ => return None,
        })
    }

    /// Lists this table describes to clients but the server's strategic merge (crate::patch)
    /// treats differently; reported to the patch owner. Remove an entry once the server agrees.
    const SERVER_DIFFERS: &[(&str, &str)] = &[];

    /// The server merges each list the way this table tells clients it does.
    #[test]
    fn server_strategic_merge_uses_the_same_keys() {
        let mut differing = Vec::new();
        for strategy in PATCH_STRATEGIES {
            if !strategy.strategy.split(',').any(|s| s == "merge") {
                continue; // retainKeys on a struct: no list to merge
            }
            let (kind, root) = location(strategy.definition)
                .unwrap_or_else(|| panic!("no sample location for {}", strategy.definition));
            let mut path: Vec<String> = root.iter().map(|s| s.to_string()).collect();
            path.push(strategy.property.to_string());
            let agrees = match (
                list_shape(kind, &path, MergeMode::Strategic),
                strategy.merge_key,
            ) {
                (ListShape::Map(keys), Some(key)) => keys.first().is_some_and(|k| k.name == key),
                (ListShape::Set, None) => true,
                _ => false,
            };
            if !agrees {
                differing.push((strategy.definition, strategy.property));
            }
        }
        assert_eq!(differing, SERVER_DIFFERS);
    }
}
