//! The resource types devcluster serves: one table that discovery, OpenAPI, the REST handlers
//! and the store all read, so a type is added in exactly one place.

/// One API resource type, as discovery describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceType {
    /// API group; empty for the core group (`/api/v1`).
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The URL segment, e.g. `configmaps`.
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Has a `/status` subresource (status is written only through it).
    pub status_subresource: bool,
    /// Has a `/log` subresource (pods).
    pub log_subresource: bool,
    /// Has a `/scale` subresource (autoscaling/v1 `Scale`; deployments).
    pub scale_subresource: bool,
    pub categories: &'static [&'static str],
}

/// Verbs every served type supports.
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

// One positional row per served type reads like the table it builds.
#[allow(clippy::too_many_arguments)]
const fn rt(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    status_subresource: bool,
) -> ResourceType {
    ResourceType {
        group,
        version,
        kind,
        plural,
        singular,
        namespaced,
        short_names,
        status_subresource,
        log_subresource: false,
        scale_subresource: false,
        categories: &[],
    }
}

/// Every type devcluster serves.
pub static RESOURCES: &[ResourceType] = &[
    rt(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        "configmap",
        true,
        &["cm"],
        false,
    ),
    rt("", "v1", "Secret", "secrets", "secret", true, &[], false),
    ResourceType {
        categories: &["all"],
        ..rt(
            "",
            "v1",
            "Service",
            "services",
            "service",
            true,
            &["svc"],
            true,
        )
    },
    ResourceType {
        log_subresource: true,
        categories: &["all"],
        ..rt("", "v1", "Pod", "pods", "pod", true, &["po"], true)
    },
    rt(
        "",
        "v1",
        "Namespace",
        "namespaces",
        "namespace",
        false,
        &["ns"],
        true,
    ),
    rt(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        true,
        &["sa"],
        false,
    ),
    rt("", "v1", "Event", "events", "event", true, &["ev"], false),
    rt(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        "event",
        true,
        &["ev"],
        false,
    ),
    ResourceType {
        categories: &["all"],
        scale_subresource: true,
        ..rt(
            "apps",
            "v1",
            "Deployment",
            "deployments",
            "deployment",
            true,
            &["deploy"],
            true,
        )
    },
    rt(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        "ingress",
        true,
        &["ing"],
        true,
    ),
    rt(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        "networkpolicy",
        true,
        &["netpol"],
        false,
    ),
    rt(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        "role",
        true,
        &[],
        false,
    ),
    rt(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        "rolebinding",
        true,
        &[],
        false,
    ),
    rt(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        "lease",
        true,
        &[],
        false,
    ),
    rt(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        true,
        &["pdb"],
        true,
    ),
];

impl ResourceType {
    /// `v1` or `group/version`, as in an object's `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The kind of a list of this type, e.g. `ConfigMapList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// The URL prefix of this type's group-version: `/api/v1` or `/apis/GROUP/VERSION`.
    pub fn group_version_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }
}

/// The type served at `group`/`version`/`plural`, if any.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The type of an object by its `apiVersion` and `kind`.
pub fn lookup_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

/// The API groups served, in discovery order (core group excluded), each with its versions.
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version),
            Some(_) => {}
            None => out.push((r.group, vec![r.version])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_find_served_types_and_reject_others() {
        let cm = lookup("", "v1", "configmaps").expect("configmaps served");
        assert_eq!(cm.kind, "ConfigMap");
        assert_eq!(cm.list_kind(), "ConfigMapList");
        assert_eq!(cm.group_version_path(), "/api/v1");
        let deploy = lookup_kind("apps/v1", "Deployment").expect("deployments served");
        assert_eq!(deploy.group_version_path(), "/apis/apps/v1");
        assert!(lookup("", "v1", "widgets").is_none());
        assert!(lookup_kind("v1", "Deployment").is_none());
    }

    #[test]
    fn plural_names_are_unique_within_a_group_version() {
        for (i, a) in RESOURCES.iter().enumerate() {
            for b in &RESOURCES[i + 1..] {
                assert!(
                    !(a.group == b.group && a.version == b.version && a.plural == b.plural),
                    "{} served twice",
                    a.plural
                );
            }
        }
        assert!(groups().iter().any(|(g, _)| *g == "events.k8s.io"));
    }
}
