//! `pods/log`: what a simulated container "printed", and the real server's errors for
//! containers that do not exist or have not started.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::pods::container_names;
use crate::error::ApiError;

/// What programs in-process wrote as containers' output (a local run's simulated runner, say),
/// by pod uid and container name; shown after the simulated kubelet's lines in `pods/log`.
#[derive(Clone, Debug, Default)]
pub struct ContainerOutput {
    lines: Arc<Mutex<HashMap<(String, String), String>>>,
}

impl ContainerOutput {
    /// Appends `text` (lines ending in newlines) to the output of `container` in the pod `uid`.
    pub fn append(&self, uid: &str, container: &str, text: &str) {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines
            .entry((uid.to_string(), container.to_string()))
            .or_default()
            .push_str(text);
    }

    /// What was written for `container` of the pod `uid`.
    fn written(&self, uid: &str, container: &str) -> Option<String> {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines
            .get(&(uid.to_string(), container.to_string()))
            .cloned()
    }

    /// `out` (the simulated kubelet's lines for `pod`'s `container`) with what was written.
    pub fn after(&self, pod: &Value, container: Option<&str>, mut out: String) -> String {
        let uid = pod
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
        let name = match container.filter(|c| !c.is_empty()) {
            Some(name) => name.to_string(),
            None => container_names(pod, "containers")
                .first()
                .map(|n| n.to_string())
                .unwrap_or_default(),
        };
        if let Some(written) = self.written(uid, &name) {
            out.push_str(&written);
        }
        out
    }
}

/// The container named `name` in the pod's spec, from any of its container lists.
fn find_container<'a>(pod: &'a Value, name: &str) -> Option<(&'static str, &'a Value)> {
    [
        ("containerStatuses", "containers"),
        ("initContainerStatuses", "initContainers"),
        ("ephemeralContainerStatuses", "ephemeralContainers"),
    ]
    .into_iter()
    .find_map(|(status_key, spec_key)| {
        pod.get("spec")?
            .get(spec_key)?
            .as_array()?
            .iter()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
            .map(|c| (status_key, c))
    })
}

/// The container to read when the request names none: the only one, or the real error listing
/// the choices.
fn default_container<'a>(pod: &'a Value, pod_name: &str) -> Result<&'a str, ApiError> {
    let containers = container_names(pod, "containers");
    if let [only] = containers.as_slice() {
        return Ok(only);
    }
    let mut message = format!(
        "a container name must be specified for pod {pod_name}, choose one of: [{}]",
        containers.join(" ")
    );
    for (key, what) in [
        ("initContainers", "init containers"),
        ("ephemeralContainers", "ephemeral containers"),
    ] {
        let names = container_names(pod, key);
        if !names.is_empty() {
            message.push_str(&format!(" or one of the {what}: [{}]", names.join(" ")));
        }
    }
    Err(ApiError::bad_request(message))
}

/// A JSON array of the strings under `key` (e.g. `command`), if any; JSON keeps word boundaries visible.
fn string_list(container: &Value, key: &str) -> Option<String> {
    let items = container.get(key)?.as_array()?;
    (!items.is_empty()).then(|| Value::Array(items.clone()).to_string())
}

/// The simulated output of `container` (None: the pod's only container) of `pod`: a line saying it
/// started with its image, command and args, the names (never the values: they may be secrets)
/// of its environment variables, and a line once it is ready.
pub fn pod_log(pod: &Value, container: Option<&str>, previous: bool) -> Result<String, ApiError> {
    let pod_name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = match container.filter(|c| !c.is_empty()) {
        Some(name) => name,
        None => default_container(pod, pod_name)?,
    };
    let (status_key, spec) = find_container(pod, name).ok_or_else(|| {
        ApiError::bad_request(format!("container {name} is not valid for pod {pod_name}"))
    })?;
    let status = pod
        .get("status")
        .and_then(|s| s.get(status_key))
        .and_then(Value::as_array)
        .and_then(|list| {
            list.iter()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
        });
    let state = status.and_then(|s| s.get("state"));
    // No reported state yet counts as still being created, as on a real node.
    let waiting_reason = match state {
        None => Some("ContainerCreating"),
        Some(s) => s.get("waiting").map(|w| {
            w.get("reason")
                .and_then(Value::as_str)
                .unwrap_or("ContainerCreating")
        }),
    };
    let restarts = status
        .and_then(|s| s.get("restartCount"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if previous {
        // As a real node answers: only a container that restarted has a previous run.
        if restarts == 0 {
            return Err(ApiError::bad_request(format!(
                "previous terminated container \"{name}\" in pod \"{pod_name}\" not found"
            )));
        }
        let code = status
            .and_then(|s| s.pointer("/lastState/terminated/exitCode"))
            .and_then(Value::as_i64)
            .unwrap_or(1);
        return Ok(format!(
            "devcluster: container {name} run {restarts} started\ndevcluster: container {name} run {restarts} exited with code {code}\n"
        ));
    }
    if let Some(reason) = waiting_reason {
        return Err(ApiError::bad_request(format!(
            "container \"{name}\" in pod \"{pod_name}\" is waiting to start: {reason}"
        )));
    }

    let image = spec.get("image").and_then(Value::as_str).unwrap_or("");
    let mut out = format!("devcluster: container {name} started from image {image}\n");
    if let Some(command) = string_list(spec, "command") {
        out.push_str(&format!("devcluster: command: {command}\n"));
    }
    if let Some(args) = string_list(spec, "args") {
        out.push_str(&format!("devcluster: args: {args}\n"));
    }
    let env_names: Vec<&str> = spec
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("name").and_then(Value::as_str))
        .collect();
    if !env_names.is_empty() {
        out.push_str(&format!(
            "devcluster: environment: {}\n",
            env_names.join(" ")
        ));
    }
    for source in spec
        .get("envFrom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for (key, what) in [("configMapRef", "configmap"), ("secretRef", "secret")] {
            if let Some(from) = source
                .pointer(&format!("/{key}/name"))
                .and_then(Value::as_str)
            {
                out.push_str(&format!("devcluster: environment from {what} {from}\n"));
            }
        }
    }
    if let Some(code) = state.and_then(|s| s.pointer("/terminated/exitCode")) {
        out.push_str(&format!("devcluster: exited with code {code}\n"));
    } else if status.and_then(|s| s.get("ready")).and_then(Value::as_bool) == Some(true) {
        out.push_str("devcluster: ready\n");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::pods::{PodStage, pod_status};
    use serde_json::json;

    fn pod(spec: Value, stage: Option<PodStage>) -> Value {
        let mut pod = json!({"metadata": {"name": "web-1", "uid": "u"}, "spec": spec, "status": {"phase": "Pending"}});
        if let Some(stage) = stage {
            pod["status"] = pod_status(&pod, stage, "2025-01-01T00:00:00Z");
        }
        pod
    }

    fn runner() -> Value {
        json!({"containers": [{
            "name": "tilt-upper", "image": "tilt:1",
            "command": ["sh", "-c"], "args": ["tilt up --host=0.0.0.0"],
            "env": [{"name": "TILT_UPPER_REPO", "value": "https://example.com/secret-repo"}, {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
            "envFrom": [{"secretRef": {"name": "creds"}}],
        }]})
    }

    #[test]
    fn a_running_container_logs_its_start_without_env_values() {
        let log = pod_log(&pod(runner(), Some(PodStage::Running)), None, false).unwrap();
        assert!(
            log.contains("container tilt-upper started from image tilt:1"),
            "{log}"
        );
        assert!(log.contains(r#"command: ["sh","-c"]"#), "{log}");
        assert!(log.contains(r#"args: ["tilt up --host=0.0.0.0"]"#), "{log}");
        assert!(log.contains("environment: TILT_UPPER_REPO TOKEN"), "{log}");
        assert!(log.contains("environment from secret creds"), "{log}");
        assert!(
            !log.contains("secret-repo"),
            "env values must not leak: {log}"
        );
        assert!(!log.contains("ready"), "{log}");
    }

    #[test]
    fn a_ready_container_says_so() {
        let log = pod_log(
            &pod(runner(), Some(PodStage::Ready)),
            Some("tilt-upper"),
            false,
        )
        .unwrap();
        assert!(log.ends_with("devcluster: ready\n"), "{log}");
    }

    #[test]
    fn a_container_that_has_not_started_is_an_error() {
        for stage in [None, Some(PodStage::Pending)] {
            let err = pod_log(&pod(runner(), stage), None, false).unwrap_err();
            assert_eq!(err.code, 400);
            assert_eq!(
                err.message,
                "container \"tilt-upper\" in pod \"web-1\" is waiting to start: ContainerCreating"
            );
        }
    }

    #[test]
    fn unknown_and_unnamed_containers_get_the_real_messages() {
        let two = json!({
            "initContainers": [{"name": "setup", "image": "busybox"}],
            "containers": [{"name": "dind", "image": "docker"}, {"name": "tilt-upper", "image": "tilt"}],
        });
        let p = pod(two, Some(PodStage::Ready));
        let err = pod_log(&p, Some("nope"), false).unwrap_err();
        assert_eq!((err.code, err.reason), (400, "BadRequest"));
        assert_eq!(err.message, "container nope is not valid for pod web-1");
        let err = pod_log(&p, None, false).unwrap_err();
        assert_eq!(
            err.message,
            "a container name must be specified for pod web-1, choose one of: [dind tilt-upper] or one of the init containers: [setup]"
        );
        let init = pod_log(&p, Some("setup"), false).unwrap();
        assert!(init.contains("exited with code 0"), "{init}");
        assert!(
            pod_log(&p, Some("dind"), false)
                .unwrap()
                .contains("image docker")
        );
    }
}
