//! The slim forms in which the controller watches and caches its children: only what it reads.
//!
//! With thousands of envs the child caches dominate the controller's memory, and parsing whole
//! objects dominates its CPU. So a runner Deployment is read straight off the wire into
//! [`RunnerDeployment`] (metadata, status, the template hash and the Tilt token), and Services,
//! Ingresses and objects about to be deleted are fetched as metadata only ([`ChildMeta`]).
//! Managed fields and `kubectl apply`'s last-applied annotation are never kept.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::Resource;
use serde::{Deserialize, Deserializer};

use crate::desired::{
    TEMPLATE_HASH_ANNOTATION, TILT_TOKEN_ENV, TILT_UPPER_CONTAINER, tilt_token_of,
};

/// `kubectl apply`'s copy of the whole object, never read by the controller.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops from `meta` what the controller never reads and what costs the most memory: managed
/// fields and the last-applied annotation.
pub fn slim_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED_ANNOTATION);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// A runner Deployment as the controller reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunnerDeployment {
    /// Metadata without managed fields and the last-applied annotation.
    pub metadata: ObjectMeta,
    /// The pod template's [`TEMPLATE_HASH_ANNOTATION`].
    pub template_hash: Option<String>,
    /// The non-empty [`TILT_TOKEN_ENV`] of the `tilt-upper` container.
    pub tilt_token: Option<String>,
    /// The Deployment's status as the API reports it.
    pub status: Option<DeploymentStatus>,
}

impl From<Deployment> for RunnerDeployment {
    fn from(deployment: Deployment) -> Self {
        let tilt_token = tilt_token_of(&deployment);
        let Deployment {
            mut metadata,
            spec,
            status,
        } = deployment;
        slim_meta(&mut metadata);
        let template_hash = spec
            .and_then(|spec| spec.template.metadata)
            .and_then(|meta| meta.annotations)
            .and_then(|mut annotations| annotations.remove(TEMPLATE_HASH_ANNOTATION));
        RunnerDeployment {
            metadata,
            template_hash,
            tilt_token,
            status,
        }
    }
}

impl Resource for RunnerDeployment {
    type DynamicType = ();
    type Scope = kube::core::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("Deployment")
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("apps")
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("deployments")
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl<'de> Deserialize<'de> for RunnerDeployment {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireDeployment::deserialize(deserializer)?;
        let template = wire.spec.and_then(|spec| spec.template);
        let template_hash = template
            .as_ref()
            .and_then(|template| template.metadata.as_ref())
            .and_then(|meta| meta.annotations.as_ref())
            .and_then(|annotations| annotations.get(TEMPLATE_HASH_ANNOTATION).cloned());
        let tilt_token = template
            .and_then(|template| template.spec)
            .and_then(|pod| {
                pod.containers
                    .into_iter()
                    .flatten()
                    .find(|container| container.name == TILT_UPPER_CONTAINER)
            })
            .and_then(|container| {
                container
                    .env
                    .into_iter()
                    .flatten()
                    .find(|var| var.name == TILT_TOKEN_ENV)
            })
            .and_then(|var| var.value)
            .filter(|token| !token.is_empty());
        Ok(RunnerDeployment {
            metadata: wire.metadata.into(),
            template_hash,
            tilt_token,
            status: wire.status,
        })
    }
}

/// The metadata of a child of kind `K` (a Service, an Ingress, or any child about to be
/// deleted). Watched and read through the API's metadata-only form, so the server sends no
/// spec or status either.
pub struct ChildMeta<K> {
    /// Metadata without managed fields and the last-applied annotation.
    pub metadata: ObjectMeta,
    kind: PhantomData<fn() -> K>,
}

impl<K> ChildMeta<K> {
    /// The metadata of an object of kind `K`, slimmed.
    pub fn new(mut metadata: ObjectMeta) -> Self {
        slim_meta(&mut metadata);
        ChildMeta {
            metadata,
            kind: PhantomData,
        }
    }
}

impl<K> Clone for ChildMeta<K> {
    fn clone(&self) -> Self {
        ChildMeta {
            metadata: self.metadata.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> fmt::Debug for ChildMeta<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildMeta")
            .field("metadata", &self.metadata)
            .finish()
    }
}

impl<K> PartialEq for ChildMeta<K> {
    fn eq(&self, other: &Self) -> bool {
        self.metadata == other.metadata
    }
}

impl<K: Resource<DynamicType = ()>> Resource for ChildMeta<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    // Lists, watches, gets and patches ask for PartialObjectMetadata.
    fn metadata_api() -> bool {
        true
    }
    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl<'de, K> Deserialize<'de> for ChildMeta<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireObject::deserialize(deserializer)?;
        Ok(ChildMeta {
            metadata: wire.metadata.into(),
            kind: PhantomData,
        })
    }
}

// The wire shapes below name only the fields the controller reads; serde skips everything
// else (managed fields included) without allocating it.

#[derive(Deserialize)]
struct WireObject {
    #[serde(default)]
    metadata: WireMeta,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct WireMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<OwnerReference>>,
}

impl From<WireMeta> for ObjectMeta {
    fn from(wire: WireMeta) -> Self {
        let mut meta = ObjectMeta {
            name: wire.name,
            namespace: wire.namespace,
            uid: wire.uid,
            resource_version: wire.resource_version,
            generation: wire.generation,
            creation_timestamp: wire.creation_timestamp,
            deletion_timestamp: wire.deletion_timestamp,
            labels: wire.labels,
            annotations: wire.annotations,
            owner_references: wire.owner_references,
            ..ObjectMeta::default()
        };
        slim_meta(&mut meta);
        meta
    }
}

#[derive(Deserialize)]
struct WireDeployment {
    #[serde(default)]
    metadata: WireMeta,
    spec: Option<WireDeploymentSpec>,
    status: Option<DeploymentStatus>,
}

#[derive(Deserialize)]
struct WireDeploymentSpec {
    template: Option<WireTemplate>,
}

#[derive(Deserialize)]
struct WireTemplate {
    metadata: Option<WireTemplateMeta>,
    spec: Option<WirePodSpec>,
}

#[derive(Deserialize)]
struct WireTemplateMeta {
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct WirePodSpec {
    containers: Option<Vec<WireContainer>>,
}

#[derive(Deserialize)]
struct WireContainer {
    #[serde(default)]
    name: String,
    env: Option<Vec<WireEnvVar>>,
}

#[derive(Deserialize)]
struct WireEnvVar {
    #[serde(default)]
    name: String,
    value: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{self, ChildrenInputs, template_hash_of};
    use ephemerator_core::{Config, Env, EnvSpec, EnvStatus};
    use k8s_openapi::api::apps::v1::DeploymentCondition;
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
    use serde_json::json;

    fn runner() -> Deployment {
        let config = Config::from_yaml_str(
            "gatewayHost: preview.localhost\nallowlist:\n  repoBase: https://github.com/tilt-dev\n",
            "test.yaml",
        )
        .unwrap();
        let env = Env {
            name: "nicks".into(),
            namespace: Some("eph".into()),
            owner: "nicks".into(),
            spec: EnvSpec {
                repo: "https://github.com/tilt-dev/tilt-example-html".into(),
                branch: "master".into(),
                path: "0-base".into(),
            },
            expiration: None,
            status: EnvStatus::default(),
            access: None,
            share_links: Vec::new(),
        };
        let mut deployment = desired::desired_children(&ChildrenInputs {
            name: &env.name,
            namespace: "eph",
            config_map_uid: "uid-1",
            spec: &env.spec,
            tilt_token: "token-1",
            discovered_ports: &[],
            config: &config,
            config_digest: crate::desired::children_config_digest(&config),
            asleep: false,
        })
        .deployment;
        // As the API server returns it: server-set metadata, managed fields, kubectl's copy,
        // and a status.
        let meta = &mut deployment.metadata;
        meta.uid = Some("dep-uid".into());
        meta.resource_version = Some("42".into());
        meta.generation = Some(3);
        meta.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some("ephctrl".into()),
            fields_v1: Some(FieldsV1(json!({"f:spec": {"f:replicas": {}}}))),
            ..ManagedFieldsEntry::default()
        }]);
        meta.annotations = Some(BTreeMap::from([
            (
                LAST_APPLIED_ANNOTATION.to_string(),
                "{\"huge\": true}".to_string(),
            ),
            ("team".to_string(), "web".to_string()),
        ]));
        deployment.status = Some(DeploymentStatus {
            ready_replicas: Some(1),
            observed_generation: Some(3),
            conditions: Some(vec![DeploymentCondition {
                type_: "Available".into(),
                status: "True".into(),
                ..DeploymentCondition::default()
            }]),
            ..DeploymentStatus::default()
        });
        deployment
    }

    #[test]
    fn a_deployment_read_off_the_wire_keeps_what_the_controller_reads() {
        let full = runner();
        let wire = serde_json::to_vec(&full).unwrap();
        let slim: RunnerDeployment = serde_json::from_slice(&wire).unwrap();
        assert_eq!(slim.tilt_token.as_deref(), Some("token-1"));
        assert_eq!(
            slim.template_hash,
            template_hash_of(&full),
            "the slim cache keeps the template hash"
        );
        assert_eq!(slim.status, full.status);
        assert_eq!(slim.metadata.uid.as_deref(), Some("dep-uid"));
        assert_eq!(slim.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(slim.metadata.generation, Some(3));
        assert_eq!(slim.metadata.labels, full.metadata.labels);
        assert_eq!(
            slim.metadata.owner_references,
            full.metadata.owner_references
        );
        assert_eq!(slim.metadata.managed_fields, None);
        assert_eq!(
            slim.metadata.annotations,
            Some(BTreeMap::from([("team".to_string(), "web".to_string())]))
        );
        // The same as slimming the parsed object.
        assert_eq!(slim, RunnerDeployment::from(full));
    }

    #[test]
    fn a_deployment_without_a_spec_or_a_token_reads_as_none() {
        let bare: RunnerDeployment = serde_json::from_value(json!({
            "metadata": {"name": "x"},
            "spec": {"template": {"spec": {"containers": [
                {"name": TILT_UPPER_CONTAINER, "env": [{"name": TILT_TOKEN_ENV, "value": ""}]}
            ]}}}
        }))
        .unwrap();
        assert_eq!(bare.tilt_token, None);
        assert_eq!(bare.template_hash, None);
        assert_eq!(bare.status, None);
        let empty: RunnerDeployment = serde_json::from_value(json!({})).unwrap();
        assert_eq!(empty, RunnerDeployment::default());
    }

    #[test]
    fn child_metadata_reads_full_objects_and_metadata_only_forms() {
        let partial = json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {
                "name": "nicks",
                "uid": "svc-uid",
                "resourceVersion": "7",
                "managedFields": [{"manager": "ephctrl", "fieldsV1": {"f:spec": {}}}],
                "annotations": {LAST_APPLIED_ANNOTATION: "{}"},
            }
        });
        let meta: ChildMeta<Service> = serde_json::from_value(partial).unwrap();
        assert_eq!(meta.metadata.uid.as_deref(), Some("svc-uid"));
        assert_eq!(meta.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(meta.metadata.managed_fields, None);
        assert_eq!(meta.metadata.annotations, None);
        let full: ChildMeta<Service> = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "nicks"},
            "spec": {"ports": [{"port": 10350}]},
        }))
        .unwrap();
        assert_eq!(full.metadata.name.as_deref(), Some("nicks"));
        assert_eq!(ChildMeta::<Service>::kind(&()), "Service");
        assert!(ChildMeta::<Service>::metadata_api());
        assert_eq!(RunnerDeployment::api_version(&()), "apps/v1");
        assert_eq!(RunnerDeployment::plural(&()), "deployments");
    }
}
