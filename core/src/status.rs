//! The status ephctrl writes back onto an env ConfigMap, read by the dashboard and the gateway.
//!
//! Status lives in metadata (the [`PHASE_LABEL`] label and three annotations) so the controller
//! can server-side apply it without touching `data`, which the dashboard owns. Reading is
//! lenient: a damaged status never hides the env or its spec.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::labels::{
    ASLEEP_SINCE_ANNOTATION, MESSAGE_ANNOTATION, PHASE_LABEL, PORTS_ANNOTATION,
    READY_AT_ANNOTATION, WOKE_AT_ANNOTATION,
};

/// Where an env is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Phase {
    /// Accepted (or not yet seen) by the controller; nothing runs yet. Also the phase of a
    /// ConfigMap without a phase label.
    #[default]
    Pending,
    /// The runner Deployment exists and is starting (cloning, creating its cluster, `tilt up`).
    Starting,
    /// The runner is ready; its ports are published.
    Ready,
    /// The runner failed; see the message.
    Failed,
    /// The controller refused the spec (not allow-listed, invalid); see the message.
    Rejected,
    /// Nobody used the env for the config's `sleepAfter`: its runner is scaled to zero until
    /// the next visit (or a Wake). Its Service, ports and expiration stay.
    Sleeping,
    /// The phase label holds a value this version does not know.
    Unknown,
}

impl Phase {
    /// The label value, e.g. `"Ready"`. [`Phase::Unknown`] is never written.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Starting => "Starting",
            Phase::Ready => "Ready",
            Phase::Failed => "Failed",
            Phase::Rejected => "Rejected",
            Phase::Sleeping => "Sleeping",
            Phase::Unknown => "Unknown",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Phase {
    type Err = std::convert::Infallible;

    /// Never fails: anything unrecognised is [`Phase::Unknown`].
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(match value {
            "Pending" => Phase::Pending,
            "Starting" => Phase::Starting,
            "Ready" => Phase::Ready,
            "Failed" => Phase::Failed,
            "Rejected" => Phase::Rejected,
            "Sleeping" => Phase::Sleeping,
            _ => Phase::Unknown,
        })
    }
}

/// One exposed port of an env, reachable at `PORT---ENV.<gatewayHost>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Port {
    /// What serves there (a Tilt resource name, or `tilt` for Tilt's own UI).
    pub name: String,
    /// The container port, 1..=65535.
    pub port: u16,
}

/// The controller-written status of an env.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnvStatus {
    /// Current phase.
    pub phase: Phase,
    /// Human-readable reason for the phase (e.g. why it was rejected).
    pub message: Option<String>,
    /// Exposed ports, sorted by port, no duplicate ports.
    pub ports: Vec<Port>,
    /// When the env first became ready.
    pub ready_at: Option<Timestamp>,
    /// Since when it sleeps (set exactly while the phase is [`Phase::Sleeping`]).
    pub asleep_since: Option<Timestamp>,
    /// When it was last woken (from sleep, or kept from sleeping by a Wake), then when that
    /// wake was over (its runner ready again): its idle time counts from then at the earliest.
    pub woke_at: Option<Timestamp>,
}

impl EnvStatus {
    /// Reads the status from a ConfigMap's metadata. Never fails: a missing phase reads as
    /// [`Phase::Pending`], an unknown one as [`Phase::Unknown`], an unreadable ports annotation as
    /// no ports (invalid entries are dropped), an unreadable `ready-at` as `None`.
    pub fn from_meta(meta: &ObjectMeta) -> EnvStatus {
        let annotation = |key: &str| meta.annotations.as_ref().and_then(|a| a.get(key));
        let phase = meta
            .labels
            .as_ref()
            .and_then(|labels| labels.get(PHASE_LABEL))
            .map_or(Phase::Pending, |value| {
                value.parse().unwrap_or(Phase::Unknown)
            });
        let message = annotation(MESSAGE_ANNOTATION)
            .filter(|m| !m.is_empty())
            .cloned();
        let ports = annotation(PORTS_ANNOTATION)
            .map(|json| parse_ports(json))
            .unwrap_or_default();
        let time = |key| annotation(key).and_then(|t| t.parse().ok());
        EnvStatus {
            phase,
            message,
            ports,
            ready_at: time(READY_AT_ANNOTATION),
            asleep_since: time(ASLEEP_SINCE_ANNOTATION),
            woke_at: time(WOKE_AT_ANNOTATION),
        }
    }

    /// The status labels to apply: just [`PHASE_LABEL`] (omitted for [`Phase::Unknown`]).
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        if self.phase != Phase::Unknown {
            labels.insert(PHASE_LABEL.to_string(), self.phase.as_str().to_string());
        }
        labels
    }

    /// The status annotations to apply. Absent values are left out, so a server-side apply with
    /// the controller's field manager removes them.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        let mut annotations = BTreeMap::new();
        if let Some(message) = self.message.as_ref().filter(|m| !m.is_empty()) {
            annotations.insert(MESSAGE_ANNOTATION.to_string(), message.clone());
        }
        if !self.ports.is_empty() {
            annotations.insert(PORTS_ANNOTATION.to_string(), ports_json(&self.ports));
        }
        for (key, time) in [
            (READY_AT_ANNOTATION, self.ready_at),
            (ASLEEP_SINCE_ANNOTATION, self.asleep_since),
            (WOKE_AT_ANNOTATION, self.woke_at),
        ] {
            if let Some(time) = time {
                annotations.insert(key.to_string(), time.to_string());
            }
        }
        annotations
    }

    /// Adds this status's labels and annotations to `meta`, as ephctrl's apply leaves them (for
    /// tools, benchmarks and tests that write envs with a status).
    pub fn write_to(&self, meta: &mut ObjectMeta) {
        meta.labels.get_or_insert_default().extend(self.labels());
        meta.annotations
            .get_or_insert_default()
            .extend(self.annotations());
    }

    /// Whether `port` is one of the exposed ports (the gateway routes only to those).
    pub fn exposes(&self, port: u16) -> bool {
        self.ports.iter().any(|p| p.port == port)
    }
}

/// Sorts by port and drops port 0 and repeated ports (the first name wins), as upstream did.
pub fn normalize_ports(ports: impl IntoIterator<Item = Port>) -> Vec<Port> {
    let mut seen = std::collections::BTreeSet::new();
    let mut unique: Vec<Port> = ports
        .into_iter()
        .filter(|p| p.port != 0 && seen.insert(p.port))
        .collect();
    unique.sort_by_key(|p| p.port);
    unique
}

fn ports_json(ports: &[Port]) -> String {
    let ports = normalize_ports(ports.iter().cloned());
    // Serialising a Vec of plain structs cannot fail.
    serde_json::to_string(&ports).unwrap_or_else(|_| "[]".to_string())
}

fn parse_ports(json: &str) -> Vec<Port> {
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(json) else {
        return Vec::new();
    };
    // Entry by entry, so one bad entry does not hide the others.
    normalize_ports(
        values
            .into_iter()
            .filter_map(|value| serde_json::from_value::<Port>(value).ok()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_with(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> ObjectMeta {
        let map = |pairs: &[(&str, &str)]| {
            Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        ObjectMeta {
            labels: map(labels),
            annotations: map(annotations),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn status_round_trips_through_metadata() {
        let status = EnvStatus {
            phase: Phase::Ready,
            message: Some("all resources up".to_string()),
            ports: vec![
                Port {
                    name: "web".to_string(),
                    port: 8000,
                },
                Port {
                    name: "tilt".to_string(),
                    port: 10350,
                },
            ],
            ready_at: Some("2024-05-01T10:00:00Z".parse().unwrap()),
            asleep_since: Some("2024-05-01T11:00:00Z".parse().unwrap()),
            woke_at: Some("2024-05-01T10:30:00Z".parse().unwrap()),
        };
        let meta = ObjectMeta {
            labels: Some(status.labels()),
            annotations: Some(status.annotations()),
            ..ObjectMeta::default()
        };
        assert_eq!(EnvStatus::from_meta(&meta), status);
    }

    #[test]
    fn written_ports_are_sorted_by_port_without_duplicates() {
        let status = EnvStatus {
            ports: vec![
                Port {
                    name: "tilt".to_string(),
                    port: 10350,
                },
                Port {
                    name: "web".to_string(),
                    port: 8000,
                },
                Port {
                    name: "web-again".to_string(),
                    port: 8000,
                },
            ],
            ..EnvStatus::default()
        };
        assert_eq!(
            status
                .annotations()
                .get(PORTS_ANNOTATION)
                .map(String::as_str),
            Some(r#"[{"name":"web","port":8000},{"name":"tilt","port":10350}]"#)
        );
    }

    #[test]
    fn missing_status_is_pending_with_nothing_else() {
        assert_eq!(
            EnvStatus::from_meta(&ObjectMeta::default()),
            EnvStatus::default()
        );
        assert_eq!(EnvStatus::default().phase, Phase::Pending);
    }

    #[test]
    fn damaged_status_reads_leniently() {
        let meta = meta_with(
            &[(PHASE_LABEL, "Exploded")],
            &[
                (PORTS_ANNOTATION, "{not json"),
                (READY_AT_ANNOTATION, "yesterday"),
            ],
        );
        let status = EnvStatus::from_meta(&meta);
        assert_eq!(status.phase, Phase::Unknown);
        assert!(status.ports.is_empty());
        assert_eq!(status.ready_at, None);
    }

    #[test]
    fn bad_port_entries_are_dropped_individually() {
        let meta = meta_with(
            &[(PHASE_LABEL, "Ready")],
            &[(
                PORTS_ANNOTATION,
                r#"[{"name":"b","port":9000},{"name":"x","port":70000},"junk",{"name":"a","port":80},{"name":"z","port":0}]"#,
            )],
        );
        let status = EnvStatus::from_meta(&meta);
        assert_eq!(
            status.ports,
            vec![
                Port {
                    name: "a".to_string(),
                    port: 80
                },
                Port {
                    name: "b".to_string(),
                    port: 9000
                },
            ]
        );
        assert!(status.exposes(9000));
        assert!(!status.exposes(0));
    }

    #[test]
    fn every_phase_round_trips_through_its_label_value() {
        for phase in [
            Phase::Pending,
            Phase::Starting,
            Phase::Ready,
            Phase::Failed,
            Phase::Rejected,
            Phase::Sleeping,
        ] {
            assert_eq!(phase.as_str().parse::<Phase>(), Ok(phase));
        }
        assert!(
            EnvStatus {
                phase: Phase::Unknown,
                ..EnvStatus::default()
            }
            .labels()
            .is_empty()
        );
    }

    #[test]
    fn a_status_written_to_metadata_reads_back() {
        let status = EnvStatus {
            phase: Phase::Ready,
            message: Some("up".into()),
            ports: vec![Port {
                name: "web".into(),
                port: 8000,
            }],
            ready_at: Some("2026-01-02T03:04:05Z".parse().unwrap()),
            ..EnvStatus::default()
        };
        let mut meta = meta_with(&[("keep", "me")], &[]);
        status.write_to(&mut meta);
        assert_eq!(EnvStatus::from_meta(&meta), status);
        assert_eq!(meta.labels.unwrap()["keep"], "me");
    }
}
