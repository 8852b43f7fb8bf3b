//! The parts of a Deployment the simulator acts on, read and checked once from its JSON.

use serde_json::Value;

use super::WorkloadError;
use super::template_hash::pod_template_hash;

/// How a changed template replaces old pods (`spec.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Delete every old pod, then create the new ones.
    Recreate,
    /// Replace pods a few at a time; both limits already resolved against `replicas`.
    RollingUpdate {
        max_surge: u32,
        max_unavailable: u32,
    },
}

/// A Deployment as the simulator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentSpec {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// `metadata.generation` (what `status.observedGeneration` reports back).
    pub generation: i64,
    /// `spec.replicas` (default 1).
    pub replicas: u32,
    /// `spec.template`.
    pub template: Value,
    /// The `pod-template-hash` of `template`.
    pub template_hash: String,
    pub strategy: Strategy,
}

impl DeploymentSpec {
    /// The `<deployment>-<hash>` name the real controller gives the ReplicaSet of this template
    /// (named in condition messages, and the prefix of its pods' names).
    pub fn replica_set_name(&self) -> String {
        format!("{}-{}", self.name, self.template_hash)
    }

    /// Reads a Deployment; an error says which field is wrong, so the object can be skipped and logged.
    pub fn parse(deploy: &Value) -> Result<DeploymentSpec, WorkloadError> {
        let namespace = str_at(deploy, "/metadata/namespace").unwrap_or_default();
        let name = str_at(deploy, "/metadata/name").unwrap_or_default();
        let malformed = |problem: String| WorkloadError::MalformedDeployment {
            namespace: namespace.to_string(),
            name: name.to_string(),
            problem,
        };
        if name.is_empty() {
            return Err(malformed("metadata.name is missing".into()));
        }
        let uid = str_at(deploy, "/metadata/uid")
            .filter(|u| !u.is_empty())
            .ok_or_else(|| malformed("metadata.uid is missing".into()))?;
        let generation = match deploy.pointer("/metadata/generation") {
            None | Some(Value::Null) => 1,
            Some(v) => v
                .as_i64()
                .ok_or_else(|| malformed(format!("metadata.generation {v} is not an integer")))?,
        };
        let replicas = match deploy.pointer("/spec/replicas") {
            None | Some(Value::Null) => 1,
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| i32::try_from(*n).is_ok())
                .ok_or_else(|| {
                    malformed(format!(
                        "spec.replicas {v} is not a non-negative 32-bit integer"
                    ))
                })?,
        };
        let template = deploy
            .pointer("/spec/template")
            .filter(|t| t.is_object())
            .ok_or_else(|| malformed("spec.template is missing or not an object".into()))?;
        check_containers(template).map_err(malformed)?;
        let strategy =
            parse_strategy(deploy.pointer("/spec/strategy"), replicas).map_err(malformed)?;
        Ok(DeploymentSpec {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: uid.to_string(),
            generation,
            replicas,
            template_hash: pod_template_hash(template),
            template: template.clone(),
            strategy,
        })
    }
}

fn str_at<'a>(obj: &'a Value, pointer: &str) -> Option<&'a str> {
    obj.pointer(pointer).and_then(Value::as_str)
}

/// A pod needs at least one container, each with a name (the real validation insists too).
fn check_containers(template: &Value) -> Result<(), String> {
    let containers = template
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or("spec.template.spec.containers is missing or empty")?;
    for (i, c) in containers.iter().enumerate() {
        if str_at(c, "/name").is_none_or(str::is_empty) {
            return Err(format!(
                "spec.template.spec.containers[{i}].name is missing"
            ));
        }
    }
    Ok(())
}

/// An `IntOrString` limit like `1` or `"25%"`, scaled against `replicas`; percentages round up
/// for surge and down for unavailability, as the real controller does.
fn resolve_limit(
    value: Option<&Value>,
    replicas: u32,
    round_up: bool,
    field: &str,
) -> Result<u32, String> {
    let value = match value {
        None | Some(Value::Null) => &Value::String("25%".into()),
        Some(v) => v,
    };
    if let Some(n) = value.as_u64() {
        return u32::try_from(n).map_err(|_| format!("{field} {n} is too large"));
    }
    let percent = value
        .as_str()
        .and_then(|s| s.strip_suffix('%'))
        .and_then(|p| p.parse::<u64>().ok())
        .ok_or_else(|| {
            format!("{field} {value} is neither a non-negative integer nor a percentage")
        })?;
    let scaled = percent * u64::from(replicas);
    let resolved = if round_up {
        scaled.div_ceil(100)
    } else {
        scaled / 100
    };
    u32::try_from(resolved).map_err(|_| format!("{field} {value} is too large"))
}

fn parse_strategy(strategy: Option<&Value>, replicas: u32) -> Result<Strategy, String> {
    let kind = strategy
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("RollingUpdate");
    match kind {
        "Recreate" => Ok(Strategy::Recreate),
        "RollingUpdate" => {
            let rolling = strategy.and_then(|s| s.get("rollingUpdate"));
            let max_surge = resolve_limit(
                rolling.and_then(|r| r.get("maxSurge")),
                replicas,
                true,
                "spec.strategy.rollingUpdate.maxSurge",
            )?;
            let mut max_unavailable = resolve_limit(
                rolling.and_then(|r| r.get("maxUnavailable")),
                replicas,
                false,
                "spec.strategy.rollingUpdate.maxUnavailable",
            )?;
            // Both zero would never make progress; the real controller allows one unavailable.
            if max_surge == 0 && max_unavailable == 0 {
                max_unavailable = 1;
            }
            Ok(Strategy::RollingUpdate {
                max_surge,
                max_unavailable: max_unavailable.min(replicas),
            })
        }
        other => Err(format!(
            "spec.strategy.type {other:?} is not supported: must be Recreate or RollingUpdate"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(spec: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "u-1", "generation": 3},
            "spec": spec,
        })
    }

    fn template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}})
    }

    #[test]
    fn defaults_match_the_real_api() {
        let d = DeploymentSpec::parse(&deployment(json!({"template": template()}))).unwrap();
        assert_eq!(d.replicas, 1);
        assert_eq!(d.generation, 3);
        // 25% of 1: surge rounds up to 1, unavailable down to 0.
        assert_eq!(
            d.strategy,
            Strategy::RollingUpdate {
                max_surge: 1,
                max_unavailable: 0
            }
        );
        assert_eq!(d.replica_set_name(), format!("web-{}", d.template_hash));
    }

    #[test]
    fn strategies_resolve_against_replicas() {
        let d = DeploymentSpec::parse(&deployment(json!({
            "replicas": 10, "template": template(),
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "30%", "maxUnavailable": 2}},
        })))
        .unwrap();
        assert_eq!(
            d.strategy,
            Strategy::RollingUpdate {
                max_surge: 3,
                max_unavailable: 2
            }
        );
        let zero = DeploymentSpec::parse(&deployment(json!({
            "template": template(),
            "strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}},
        })))
        .unwrap();
        assert_eq!(
            zero.strategy,
            Strategy::RollingUpdate {
                max_surge: 0,
                max_unavailable: 1
            }
        );
        let recreate = DeploymentSpec::parse(&deployment(
            json!({"template": template(), "strategy": {"type": "Recreate"}}),
        ))
        .unwrap();
        assert_eq!(recreate.strategy, Strategy::Recreate);
    }

    #[test]
    fn malformed_deployments_are_errors_naming_the_field() {
        let cases = [
            (
                json!({"replicas": -1, "template": template()}),
                "spec.replicas",
            ),
            (
                json!({"replicas": "two", "template": template()}),
                "spec.replicas",
            ),
            (json!({}), "spec.template"),
            (
                json!({"template": {"spec": {"containers": []}}}),
                "containers",
            ),
            (
                json!({"template": {"spec": {"containers": [{"image": "x"}]}}}),
                "containers[0].name",
            ),
            (
                json!({"template": template(), "strategy": {"type": "Canary"}}),
                "spec.strategy.type",
            ),
            (
                json!({"template": template(), "strategy": {"rollingUpdate": {"maxSurge": "lots"}}}),
                "maxSurge",
            ),
        ];
        for (spec, field) in cases {
            let err = DeploymentSpec::parse(&deployment(spec.clone()))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(field) && err.contains("default/web"),
                "{spec}: {err}"
            );
        }
        let no_uid = json!({"metadata": {"name": "web"}, "spec": {"template": template()}});
        assert!(
            DeploymentSpec::parse(&no_uid)
                .unwrap_err()
                .to_string()
                .contains("uid")
        );
        assert!(DeploymentSpec::parse(&json!("not an object")).is_err());
    }
}
