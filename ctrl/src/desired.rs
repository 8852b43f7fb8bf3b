//! The desired children of an env, as a pure function of the env, the config and what was
//! observed: the runner Deployment, its Service and (in Ingress mode) its Ingress.
//!
//! Nothing here talks to the cluster, so every rule is unit-tested without one.

use std::collections::{BTreeMap, BTreeSet};

use ephemerator_core::config::{ContainerResources, ResourceAmounts};
use ephemerator_core::hosts::env_port_host;
use ephemerator_core::labels::child_labels;
use std::hash::{Hash, Hasher};

use ephemerator_core::{Config, EnvSpec, Port};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, ExecAction, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, SecurityContext, Service, ServicePort,
    ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Pod template annotation holding [`ephemerator_core::EnvSpec::fingerprint`]: a changed repo,
/// branch or path changes the template, so the Deployment rolls the runner out again.
pub const TEMPLATE_HASH_ANNOTATION: &str = "ephemerator.tilt.dev/template-hash";
/// Name of the Service port (and container port) of Tilt's web UI and API.
pub use crate::tilt::TILT_PORT_NAME;
/// Container running Tilt (upstream's name).
pub const TILT_UPPER_CONTAINER: &str = "tilt-upper";
/// Privileged docker-in-docker container (upstream's name).
pub const DIND_CONTAINER: &str = "dind";
/// Runner env var with the Tilt API token; the runner writes it to `~/.tilt-dev/token`, which
/// Tilt 0.37.4+ checks in the `X-Tilt-Token` header, so the controller can read the ports.
pub const TILT_TOKEN_ENV: &str = "TILT_UPPER_TOKEN";

/// Everything the children of an env are built from, and so the one thing that decides whether
/// an apply can be skipped: [`desired_children`] reads nothing else, and [`ChildrenInputs::digest`]
/// covers every field (the config through its digest), so the two cannot drift apart.
#[derive(Debug, Clone)]
pub struct ChildrenInputs<'a> {
    /// The env's name (and its children's).
    pub name: &'a str,
    /// The namespace of the env and its children.
    pub namespace: &'a str,
    /// The env ConfigMap's uid, for the owner references.
    pub config_map_uid: &'a str,
    /// What runs.
    pub spec: &'a EnvSpec,
    /// The runner's Tilt token: the existing runner's, reused so a reconcile never restarts a
    /// runner just to change its token, or a fresh one.
    pub tilt_token: &'a str,
    /// Ports discovered from the running Tilt (without Tilt's own port).
    pub discovered_ports: &'a [Port],
    /// The loaded config.
    pub config: &'a Config,
    /// [`children_config_digest`] of `config`.
    pub config_digest: u64,
    /// The env sleeps: its runner has no replica (the Service stays, for its wake).
    pub asleep: bool,
}

/// A digest of the config settings every env's children are built from (the runner, Ingress
/// mode, the gateway host): an allow-list edit leaves it, so it re-applies no env's children.
pub fn children_config_digest(config: &Config) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    format!(
        "{:?}{:?}{:?}",
        config.runner, config.ingress, config.gateway_host
    )
    .hash(&mut hasher);
    hasher.finish()
}

impl ChildrenInputs<'_> {
    /// A digest of every input: an unchanged digest means unchanged children, found without
    /// building or serializing them.
    pub fn digest(&self) -> u64 {
        let mut hasher = std::hash::DefaultHasher::new();
        (
            self.name,
            self.namespace,
            self.config_map_uid,
            self.spec,
            self.tilt_token,
            self.discovered_ports,
            self.config_digest,
            self.asleep,
            // The one per-env part of the config children use.
            self.config.static_ports(&self.spec.repo),
        )
            .hash(&mut hasher);
        hasher.finish()
    }

    /// The env's ports: Tilt's, then the static or discovered ones (see [`exposed_ports`]).
    pub fn ports(&self) -> Vec<Port> {
        exposed_ports(self.spec, self.config, self.discovered_ports)
    }
}

/// The children of one env.
#[derive(Debug, Clone)]
pub struct Children {
    /// The runner.
    pub deployment: Deployment,
    /// The runner's Service: Tilt's port plus the env's ports.
    pub service: Service,
    /// Routes `PORT---ENV.<gatewayHost>` to the Service, in Ingress mode only.
    pub ingress: Option<Ingress>,
}

/// An owner reference making the env ConfigMap the controller of a child, so deleting the
/// ConfigMap garbage-collects it. `blockOwnerDeletion` is left unset: it would need update
/// rights on `configmaps/finalizers` and nothing waits on foreground deletion here.
pub fn owner_reference(config_map_name: &str, config_map_uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "v1".to_string(),
        kind: "ConfigMap".to_string(),
        name: config_map_name.to_string(),
        uid: config_map_uid.to_string(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

/// The template hash a runner Deployment was given, if any.
pub fn template_hash_of(deployment: &Deployment) -> Option<String> {
    deployment
        .spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(TEMPLATE_HASH_ANNOTATION)
        .cloned()
}

/// The Tilt token a runner Deployment was given, if any.
pub fn tilt_token_of(deployment: &Deployment) -> Option<String> {
    tilt_upper_env(deployment, TILT_TOKEN_ENV).filter(|token| !token.is_empty())
}

/// The value of the runner's `tilt-upper` environment variable `name`, if set.
pub fn tilt_upper_env(deployment: &Deployment, name: &str) -> Option<String> {
    deployment
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == TILT_UPPER_CONTAINER)?
        .env
        .as_ref()?
        .iter()
        .find(|var| var.name == name)?
        .value
        .clone()
}

/// The ports of an env's Service: Tilt's port first (always), then the repo's static ports from
/// the config if it has any, else the discovered ones. Ports and names are unique (the first
/// wins), so the Service is always valid.
pub fn exposed_ports(spec: &EnvSpec, config: &Config, discovered: &[Port]) -> Vec<Port> {
    let tilt_port = config.runner.tilt_port;
    let static_ports = config.static_ports(&spec.repo);
    let others = if static_ports.is_empty() {
        discovered
    } else {
        static_ports
    };
    let mut names = BTreeSet::from([TILT_PORT_NAME.to_string()]);
    let mut numbers = BTreeSet::from([tilt_port]);
    let mut ports = vec![Port {
        name: TILT_PORT_NAME.to_string(),
        port: tilt_port,
    }];
    let mut rest: Vec<Port> = others
        .iter()
        .filter(|p| p.port != 0 && numbers.insert(p.port) && names.insert(p.name.clone()))
        .cloned()
        .collect();
    rest.sort_by_key(|p| p.port);
    ports.extend(rest);
    ports
}

/// Builds every child of an env from its inputs alone.
pub fn desired_children(inputs: &ChildrenInputs) -> Children {
    let ports = inputs.ports();
    let meta = child_meta(inputs);
    let deployment = runner_deployment(inputs, meta.clone());
    let service = runner_service(inputs.name, meta.clone(), &ports);
    let ingress = inputs
        .config
        .ingress
        .enabled
        .then(|| runner_ingress(inputs.name, inputs.config, meta, &ports));
    Children {
        deployment,
        service,
        ingress,
    }
}

fn child_meta(inputs: &ChildrenInputs) -> ObjectMeta {
    ObjectMeta {
        name: Some(inputs.name.to_string()),
        namespace: Some(inputs.namespace.to_string()),
        labels: Some(child_labels(inputs.name)),
        owner_references: Some(vec![owner_reference(inputs.name, inputs.config_map_uid)]),
        ..ObjectMeta::default()
    }
}

fn runner_deployment(inputs: &ChildrenInputs, meta: ObjectMeta) -> Deployment {
    let labels = child_labels(inputs.name);
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels.clone()),
            annotations: Some(BTreeMap::from([(
                TEMPLATE_HASH_ANNOTATION.to_string(),
                inputs.spec.fingerprint(),
            )])),
            ..ObjectMeta::default()
        }),
        spec: Some(runner_pod(inputs)),
    };
    Deployment {
        metadata: meta,
        spec: Some(DeploymentSpec {
            replicas: Some(if inputs.asleep { 0 } else { 1 }),
            selector: LabelSelector {
                match_labels: Some(labels),
                ..LabelSelector::default()
            },
            // One runner at a time: two would each build a cluster for the same env.
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".to_string()),
                ..DeploymentStrategy::default()
            }),
            template,
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// Upstream's pair: a privileged docker-in-docker container and `tilt-upper`, which clones the
/// repo, creates a cluster on that docker and runs `tilt up --host 0.0.0.0`.
fn runner_pod(inputs: &ChildrenInputs) -> PodSpec {
    let (spec, runner) = (inputs.spec, &inputs.config.runner);
    let volume = |name: &str| Volume {
        name: name.to_string(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    };
    let mount = |name: &str, path: &str| VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        ..VolumeMount::default()
    };
    let var = |name: &str, value: &str| EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        ..EnvVar::default()
    };
    let dind = Container {
        name: DIND_CONTAINER.to_string(),
        image: Some(runner.dind_image.clone()),
        // Docker-in-docker needs it; it is why runners get their own service account and no
        // API token.
        security_context: Some(SecurityContext {
            privileged: Some(true),
            ..SecurityContext::default()
        }),
        resources: resources(&runner.dind_resources),
        volume_mounts: Some(vec![
            mount("dind-storage", "/var/lib/docker"),
            mount("dind-socket", "/run"),
        ]),
        ..Container::default()
    };
    let mut tilt_env = vec![
        var("TILT_UPPER_REPO", &spec.repo),
        var("TILT_UPPER_BRANCH", &spec.branch),
        var("TILT_UPPER_PATH", &spec.path),
        var(TILT_TOKEN_ENV, inputs.tilt_token),
    ];
    tilt_env.extend(runner.env.iter().map(|v| var(&v.name, &v.value)));
    let tilt_upper = Container {
        name: TILT_UPPER_CONTAINER.to_string(),
        image: Some(runner.tilt_upper_image.clone()),
        env: Some(tilt_env),
        ports: Some(vec![ContainerPort {
            name: Some(TILT_PORT_NAME.to_string()),
            container_port: i32::from(runner.tilt_port),
            ..ContainerPort::default()
        }]),
        // Upstream's check: ready once Tilt answers for its session.
        readiness_probe: Some(Probe {
            exec: Some(ExecAction {
                command: Some(vec!["tilt".into(), "get".into(), "uisession".into()]),
            }),
            period_seconds: Some(5),
            timeout_seconds: Some(2),
            ..Probe::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        resources: resources(&runner.tilt_upper_resources),
        volume_mounts: Some(vec![mount("dind-socket", "/run")]),
        ..Container::default()
    };
    PodSpec {
        containers: vec![dind, tilt_upper],
        volumes: Some(vec![volume("dind-storage"), volume("dind-socket")]),
        service_account_name: Some(runner.service_account_name.clone()),
        automount_service_account_token: Some(false),
        // With hundreds of envs in one namespace, service links would flood the environment.
        enable_service_links: Some(false),
        ..PodSpec::default()
    }
}

fn resources(config: &ContainerResources) -> Option<ResourceRequirements> {
    let amounts = |amounts: &ResourceAmounts| {
        let map: BTreeMap<String, Quantity> = [("cpu", &amounts.cpu), ("memory", &amounts.memory)]
            .into_iter()
            .filter_map(|(key, value)| Some((key.to_string(), Quantity(value.clone()?))))
            .collect();
        (!map.is_empty()).then_some(map)
    };
    let requirements = ResourceRequirements {
        requests: amounts(&config.requests),
        limits: amounts(&config.limits),
        ..ResourceRequirements::default()
    };
    (requirements.requests.is_some() || requirements.limits.is_some()).then_some(requirements)
}

fn runner_service(name: &str, meta: ObjectMeta, ports: &[Port]) -> Service {
    Service {
        metadata: meta,
        spec: Some(ServiceSpec {
            selector: Some(child_labels(name)),
            ports: Some(
                ports
                    .iter()
                    .map(|p| ServicePort {
                        name: Some(p.name.clone()),
                        port: i32::from(p.port),
                        target_port: Some(IntOrString::Int(i32::from(p.port))),
                        protocol: Some("TCP".to_string()),
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn runner_ingress(name: &str, config: &Config, mut meta: ObjectMeta, ports: &[Port]) -> Ingress {
    if !config.ingress.annotations.is_empty() {
        meta.annotations = Some(config.ingress.annotations.clone());
    }
    let rules = ports
        .iter()
        .map(|p| IngressRule {
            host: Some(env_port_host(p.port, name, &config.gateway_host)),
            http: Some(HTTPIngressRuleValue {
                paths: vec![HTTPIngressPath {
                    path: Some("/".to_string()),
                    path_type: "Prefix".to_string(),
                    backend: IngressBackend {
                        service: Some(IngressServiceBackend {
                            name: name.to_string(),
                            port: Some(ServiceBackendPort {
                                number: Some(i32::from(p.port)),
                                ..ServiceBackendPort::default()
                            }),
                        }),
                        ..IngressBackend::default()
                    },
                }],
            }),
        })
        .collect();
    Ingress {
        metadata: meta,
        spec: Some(IngressSpec {
            ingress_class_name: config.ingress.class_name.clone(),
            rules: Some(rules),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ephemerator_core::Env;
    use ephemerator_core::labels::OWNER_NAME_LABEL;
    use ephemerator_core::{EnvSpec, EnvStatus};

    const CONFIG: &str = r#"
gatewayHost: preview.localhost
allowlist:
  repoBase: https://github.com/tilt-dev
  repoNames: [tilt-example-html]
  repos:
    - url: https://github.com/example/static-site
      ports:
        - {name: web, port: 8080}
        - {name: admin, port: 9000}
runner:
  tiltUpperImage: registry.example/tilt-upper:v1
  dindImage: registry.example/dind:v1
  serviceAccountName: runner-sa
  resources:
    tiltUpper:
      requests: {cpu: 500m, memory: 1Gi}
      limits: {memory: 2Gi}
  env:
    - {name: EXTRA, value: "1"}
ingress:
  enabled: true
  className: nginx
  annotations:
    example.com/auth: "on"
"#;

    fn config() -> Config {
        Config::from_yaml_str(CONFIG, "test.yaml").unwrap()
    }

    fn env(repo: &str, branch: &str) -> Env {
        Env {
            name: "nicks".to_string(),
            namespace: Some("eph".to_string()),
            owner: "nicks".to_string(),
            spec: EnvSpec {
                repo: repo.to_string(),
                branch: branch.to_string(),
                path: "0-base".to_string(),
            },
            expiration: None,
            status: EnvStatus::default(),
            access: None,
            share_links: Vec::new(),
        }
    }

    const HTML: &str = "https://github.com/tilt-dev/tilt-example-html";

    /// What the tests vary besides the env.
    #[derive(Default)]
    struct Observed {
        tilt_token: Option<String>,
        discovered_ports: Vec<Port>,
    }

    fn inputs<'a>(env: &'a Env, observed: &'a Observed, config: &'a Config) -> ChildrenInputs<'a> {
        ChildrenInputs {
            name: &env.name,
            namespace: "eph",
            config_map_uid: "uid-1",
            spec: &env.spec,
            tilt_token: observed.tilt_token.as_deref().unwrap_or("fresh-token"),
            discovered_ports: &observed.discovered_ports,
            config,
            config_digest: children_config_digest(config),
            asleep: false,
        }
    }

    fn build_with(env: &Env, observed: &Observed, config: &Config) -> Children {
        desired_children(&inputs(env, observed, config))
    }

    fn build(env: &Env, observed: &Observed) -> Children {
        build_with(env, observed, &config())
    }

    fn pod(children: &Children) -> PodSpec {
        children
            .deployment
            .spec
            .clone()
            .unwrap()
            .template
            .spec
            .unwrap()
    }

    fn container<'a>(pod: &'a PodSpec, name: &str) -> &'a Container {
        pod.containers.iter().find(|c| c.name == name).unwrap()
    }

    fn env_value(container: &Container, name: &str) -> Option<String> {
        container
            .env
            .as_ref()?
            .iter()
            .find(|v| v.name == name)?
            .value
            .clone()
    }

    fn template_hash(children: &Children) -> String {
        template_hash_of(&children.deployment).expect("the runner has a template hash")
    }

    #[test]
    fn every_child_is_labelled_named_and_controlled_by_the_config_map() {
        let children = build(&env(HTML, "master"), &Observed::default());
        let metas = [
            &children.deployment.metadata,
            &children.service.metadata,
            &children.ingress.as_ref().unwrap().metadata,
        ];
        for meta in metas {
            assert_eq!(meta.name.as_deref(), Some("nicks"));
            assert_eq!(meta.namespace.as_deref(), Some("eph"));
            let labels = meta.labels.as_ref().unwrap();
            assert_eq!(labels, &child_labels("nicks"));
            assert_eq!(labels[OWNER_NAME_LABEL], "nicks");
            let owners = meta.owner_references.as_ref().unwrap();
            assert_eq!(owners.len(), 1);
            assert_eq!(owners[0].kind, "ConfigMap");
            assert_eq!(owners[0].uid, "uid-1");
            assert_eq!(owners[0].controller, Some(true));
        }
        let spec = children.deployment.spec.as_ref().unwrap();
        assert_eq!(
            spec.selector.match_labels.as_ref(),
            Some(&child_labels("nicks"))
        );
        assert_eq!(
            children.service.spec.as_ref().unwrap().selector.as_ref(),
            Some(&child_labels("nicks"))
        );
    }

    #[test]
    fn runner_pod_is_upstreams_pair_from_the_config() {
        let children = build(&env(HTML, "master"), &Observed::default());
        let pod = pod(&children);
        assert_eq!(pod.service_account_name.as_deref(), Some("runner-sa"));
        assert_eq!(pod.automount_service_account_token, Some(false));

        let dind = container(&pod, DIND_CONTAINER);
        assert_eq!(dind.image.as_deref(), Some("registry.example/dind:v1"));
        assert_eq!(
            dind.security_context.as_ref().unwrap().privileged,
            Some(true)
        );

        let tilt = container(&pod, TILT_UPPER_CONTAINER);
        assert_eq!(
            tilt.image.as_deref(),
            Some("registry.example/tilt-upper:v1")
        );
        assert_eq!(env_value(tilt, "TILT_UPPER_REPO").as_deref(), Some(HTML));
        assert_eq!(
            env_value(tilt, "TILT_UPPER_BRANCH").as_deref(),
            Some("master")
        );
        assert_eq!(
            env_value(tilt, "TILT_UPPER_PATH").as_deref(),
            Some("0-base")
        );
        assert_eq!(env_value(tilt, "EXTRA").as_deref(), Some("1"));
        let security = tilt.security_context.as_ref().unwrap();
        assert_eq!(security.privileged, None);
        assert_eq!(security.allow_privilege_escalation, Some(false));
        let resources = tilt.resources.as_ref().unwrap();
        assert_eq!(
            resources.requests.as_ref().unwrap()["cpu"],
            Quantity("500m".into())
        );
        assert_eq!(
            resources.requests.as_ref().unwrap()["memory"],
            Quantity("1Gi".into())
        );
        assert_eq!(
            resources.limits.as_ref().unwrap()["memory"],
            Quantity("2Gi".into())
        );
        assert!(!resources.limits.as_ref().unwrap().contains_key("cpu"));
        assert_eq!(dind.resources, None);
    }

    #[test]
    fn template_hash_changes_with_repo_branch_and_path_only() {
        let base = build(&env(HTML, "master"), &Observed::default());
        let same = build(&env(HTML, "master"), &Observed::default());
        assert_eq!(template_hash(&base), template_hash(&same));
        let branch = build(&env(HTML, "main"), &Observed::default());
        assert_ne!(template_hash(&base), template_hash(&branch));
        let mut moved = env(HTML, "master");
        moved.spec.path = "1-measured".into();
        assert_ne!(
            template_hash(&base),
            template_hash(&build(&moved, &Observed::default()))
        );
        let mut other_owner = env(HTML, "master");
        other_owner.owner = "someone".into();
        assert_eq!(
            template_hash(&base),
            template_hash(&build(&other_owner, &Observed::default()))
        );
    }

    #[test]
    fn the_tilt_token_is_the_runners_and_part_of_the_digest() {
        let env = env(HTML, "master");
        let config = config();
        let fresh = Observed::default();
        let first = build(&env, &fresh);
        assert_eq!(
            tilt_token_of(&first.deployment).as_deref(),
            Some("fresh-token")
        );
        let kept = Observed {
            tilt_token: Some("kept-token".into()),
            ..Observed::default()
        };
        let again = build(&env, &kept);
        assert_eq!(
            tilt_token_of(&again.deployment).as_deref(),
            Some("kept-token")
        );
        assert_ne!(
            inputs(&env, &fresh, &config).digest(),
            inputs(&env, &kept, &config).digest()
        );
        assert_eq!(
            inputs(&env, &kept, &config).digest(),
            inputs(&env, &kept, &config).digest()
        );
    }

    #[test]
    fn an_allow_list_edit_rebuilds_no_env_s_children() {
        let env = env(HTML, "master");
        let observed = Observed::default();
        let config = config();
        let mut more_repos = config.clone();
        more_repos.allowlist = ephemerator_core::Config::from_yaml_str(
            "gatewayHost: preview.localhost\nallowlist:\n  repoBase: https://github.com/tilt-dev\n  repoNames: [tilt-example-html, tilt-example-go]\n",
            "test.yaml",
        )
        .unwrap()
        .allowlist;
        assert_ne!(config.digest(), more_repos.digest(), "a different config");
        assert_eq!(
            inputs(&env, &observed, &config).digest(),
            inputs(&env, &observed, &more_repos).digest()
        );
        // Static ports for this env's repo are part of its children.
        let mut with_ports = config.clone();
        with_ports.allowlist = ephemerator_core::Config::from_yaml_str(
            &format!("gatewayHost: preview.localhost\nallowlist:\n  repos:\n    - url: {HTML}\n      ports: [{{name: web, port: 8000}}]\n"),
            "test.yaml",
        )
        .unwrap()
        .allowlist;
        assert_ne!(
            inputs(&env, &observed, &config).digest(),
            inputs(&env, &observed, &with_ports).digest()
        );
    }

    #[test]
    fn every_input_changes_the_digest() {
        let env = env(HTML, "master");
        let config = config();
        let observed = Observed::default();
        let base = inputs(&env, &observed, &config);
        let other_spec = EnvSpec {
            branch: "main".into(),
            ..env.spec.clone()
        };
        let ports = [Port {
            name: "web".into(),
            port: 8000,
        }];
        let mut other_config = config.clone();
        other_config.runner.dind_image = "registry.example/dind:v2".into();
        let variants = [
            ChildrenInputs {
                name: "other",
                ..base.clone()
            },
            ChildrenInputs {
                namespace: "other",
                ..base.clone()
            },
            ChildrenInputs {
                config_map_uid: "uid-2",
                ..base.clone()
            },
            ChildrenInputs {
                spec: &other_spec,
                ..base.clone()
            },
            ChildrenInputs {
                discovered_ports: &ports,
                ..base.clone()
            },
            ChildrenInputs {
                config: &other_config,
                config_digest: children_config_digest(&other_config),
                ..base.clone()
            },
            ChildrenInputs {
                asleep: true,
                ..base.clone()
            },
        ];
        for variant in variants {
            assert_ne!(variant.digest(), base.digest(), "{variant:?}");
        }
    }

    #[test]
    fn service_exposes_tilt_then_discovered_ports_sorted_and_unique() {
        let observed = Observed {
            discovered_ports: vec![
                Port {
                    name: "web".into(),
                    port: 8000,
                },
                Port {
                    name: "api".into(),
                    port: 3000,
                },
                Port {
                    name: "web-again".into(),
                    port: 8000,
                },
                Port {
                    name: "tilt".into(),
                    port: 10350,
                },
            ],
            ..Observed::default()
        };
        let children = build(&env(HTML, "master"), &observed);
        let service_ports: Vec<(String, i32)> = children
            .service
            .spec
            .unwrap()
            .ports
            .unwrap()
            .into_iter()
            .map(|p| (p.name.unwrap(), p.port))
            .collect();
        assert_eq!(
            service_ports,
            vec![
                ("tilt".into(), 10350),
                ("api".into(), 3000),
                ("web".into(), 8000)
            ]
        );
    }

    #[test]
    fn static_ports_from_the_config_replace_discovery() {
        let observed = Observed {
            discovered_ports: vec![Port {
                name: "ignored".into(),
                port: 1234,
            }],
            ..Observed::default()
        };
        let children = build(
            &env("https://github.com/example/static-site", "main"),
            &observed,
        );
        let ports: Vec<i32> = children
            .service
            .spec
            .unwrap()
            .ports
            .unwrap()
            .iter()
            .map(|p| p.port)
            .collect();
        assert_eq!(ports, vec![10350, 8080, 9000]);
    }

    #[test]
    fn a_discovered_port_equal_to_the_configured_tilt_port_stays_tilts() {
        // Discovery leaves out Tilt's default port only; with another `tiltPort` the Service
        // must still expose that port once, as Tilt's.
        let mut config = config();
        config.runner.tilt_port = 10351;
        let discovered = [
            Port {
                name: "web".into(),
                port: 10351,
            },
            Port {
                name: "api".into(),
                port: 10350,
            },
        ];
        let ports = exposed_ports(&env(HTML, "master").spec, &config, &discovered);
        assert_eq!(
            ports,
            vec![
                Port {
                    name: TILT_PORT_NAME.into(),
                    port: 10351
                },
                Port {
                    name: "api".into(),
                    port: 10350
                },
            ]
        );
    }

    #[test]
    fn ingress_routes_each_port_host_to_the_service() {
        let observed = Observed {
            discovered_ports: vec![Port {
                name: "web".into(),
                port: 8000,
            }],
            ..Observed::default()
        };
        let children = build(&env(HTML, "master"), &observed);
        let ingress = children.ingress.unwrap();
        assert_eq!(
            ingress.metadata.annotations.unwrap()["example.com/auth"],
            "on"
        );
        let spec = ingress.spec.unwrap();
        assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
        let routes: Vec<(String, String, i32)> = spec
            .rules
            .unwrap()
            .into_iter()
            .map(|rule| {
                let path = &rule.http.as_ref().unwrap().paths[0];
                let backend = path.backend.service.as_ref().unwrap();
                (
                    rule.host.clone().unwrap(),
                    backend.name.clone(),
                    backend.port.as_ref().unwrap().number.unwrap(),
                )
            })
            .collect();
        assert_eq!(
            routes,
            vec![
                (
                    "10350---nicks.preview.localhost".into(),
                    "nicks".into(),
                    10350
                ),
                (
                    "8000---nicks.preview.localhost".into(),
                    "nicks".into(),
                    8000
                ),
            ]
        );
    }

    #[test]
    fn no_ingress_unless_enabled() {
        let mut config = config();
        config.ingress.enabled = false;
        let children = build_with(&env(HTML, "master"), &Observed::default(), &config);
        assert!(children.ingress.is_none());
    }
}
