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
