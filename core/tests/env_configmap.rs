//! Env ConfigMaps as they arrive from the cluster: upstream's example and arbitrary data.

// Tests and benchmarks: an unwrap is an assertion (the lint is for the servers' code).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use ephemerator_core::access::Access;
use ephemerator_core::env::{BRANCH_KEY, EXPIRATION_KEY, PATH_KEY, REPO_KEY};
use ephemerator_core::env::{set_access, set_share_links};
use ephemerator_core::labels::{
    ACCESS_ANNOTATION, SHARE_LINKS_ANNOTATION, env_labels, has_ephemerator_labels,
};
use ephemerator_core::share::ShareLink;
use ephemerator_core::{Env, EnvSpec, Phase};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proptest::prelude::*;

const UPSTREAM_NICKS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: nicks
  labels: {app.kubernetes.io/part-of: ephemerator.tilt.dev, app.kubernetes.io/name: ephrunner}
data: {repo: "https://github.com/tilt-dev/tilt-example-html", path: "0-base/Tiltfile", branch: "master"}
"#;

#[test]
fn upstream_nicks_config_map_is_a_valid_env_owned_by_nicks() {
    let config_map: ConfigMap = serde_saphyr::from_str(UPSTREAM_NICKS).unwrap();
    assert!(has_ephemerator_labels(config_map.metadata.labels.as_ref()));
    let env = Env::from_config_map(&config_map).unwrap();
    assert_eq!(env.name, "nicks");
    assert_eq!(env.owner, "nicks");
    assert_eq!(
        env.spec,
        EnvSpec {
            repo: "https://github.com/tilt-dev/tilt-example-html".to_string(),
            branch: "master".to_string(),
            path: "0-base/Tiltfile".to_string(),
        }
    );
    assert_eq!(env.expiration, None, "the controller fills it in");
    assert_eq!(env.status.phase, Phase::Pending);

    // And it passes validation against the example config's allow-list.
    let config = ephemerator_core::Config::load(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/base/ephemerator.yaml"),
    )
    .unwrap();
    config.validate_spec(&env.spec).unwrap();
}

/// The access annotation: read exactly, absent meaning the config's default, a wrong value an
/// error that names the annotation (the controller rejects the env with it; nothing opens it).
#[test]
fn the_access_annotation_is_read_exactly_and_written_back() {
    let mut config_map: ConfigMap = serde_saphyr::from_str(UPSTREAM_NICKS).unwrap();
    assert_eq!(Env::from_config_map(&config_map).unwrap().access, None);
    for level in Access::ALL {
        set_access(&mut config_map, level);
        let env = Env::from_config_map(&config_map).unwrap();
        assert_eq!(env.access, Some(level));
        assert_eq!(
            env.to_config_map().metadata.annotations.unwrap()[ACCESS_ANNOTATION],
            level.as_str()
        );
    }
    config_map
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(ACCESS_ANNOTATION.into(), "everyone".into());
    let error = Env::from_config_map(&config_map).unwrap_err();
    assert_eq!(
        error.to_string(),
        "metadata.annotations[ephemerator.tilt.dev/access]: \"everyone\" is not an access level: use owner, team or public"
    );
}

/// Share links: read from their annotation and written back; a broken list is an error naming
/// the annotation, as the access annotation's is.
#[test]
fn share_links_are_read_from_their_annotation_and_written_back() {
    let mut config_map: ConfigMap = serde_saphyr::from_str(UPSTREAM_NICKS).unwrap();
    assert!(
        Env::from_config_map(&config_map)
            .unwrap()
            .share_links
            .is_empty()
    );
    let link = ShareLink {
        id: "q1w2e3r4t5".into(),
        expires: "2026-12-03T18:00:00Z".parse().unwrap(),
        label: "for the designers".into(),
        created_by: "nicks".into(),
        created: "2026-12-03T12:00:00Z".parse().unwrap(),
    };
    set_share_links(&mut config_map, std::slice::from_ref(&link));
    let env = Env::from_config_map(&config_map).unwrap();
    assert_eq!(env.share_links, [link]);
    assert_eq!(
        Env::from_config_map(&env.to_config_map())
            .unwrap()
            .share_links,
        env.share_links
    );
    config_map
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(SHARE_LINKS_ANNOTATION.into(), "[{}]".into());
    let error = Env::from_config_map(&config_map).unwrap_err();
    assert_eq!(
        error.field,
        "metadata.annotations[ephemerator.tilt.dev/share-links]"
    );
    assert!(
        error.message.contains("not a list of share links"),
        "{error}"
    );
}

fn env_config_map(data: Option<BTreeMap<String, String>>) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some("env".to_string()),
            labels: Some(env_labels()),
            ..ObjectMeta::default()
        },
        data,
        ..ConfigMap::default()
    }
}

/// Keys biased towards the real ones so the interesting branches get exercised.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(REPO_KEY.to_string()),
        Just(BRANCH_KEY.to_string()),
        Just(PATH_KEY.to_string()),
        Just(EXPIRATION_KEY.to_string()),
        any::<String>(),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\x00-\\x1f\\u{7f}-\\u{9f}]{0,8}",
        Just(String::new()),
        Just("2030-01-01T00:00:00Z".to_string()),
        (0usize..200_000).prop_map(|n| "é".repeat(n)),
    ]
}

proptest! {
    #[test]
    fn arbitrary_data_never_panics_and_errors_name_a_field(
        data in proptest::option::of(proptest::collection::btree_map(key(), value(), 0..6)),
        name in proptest::option::of(prop_oneof![Just("env".to_string()), any::<String>()]),
        labelled in any::<bool>(),
    ) {
        let mut config_map = env_config_map(data.clone());
        config_map.metadata.name = name;
        if !labelled {
            config_map.metadata.labels = None;
        }
        match Env::from_config_map(&config_map) {
            Ok(env) => {
                let data = data.unwrap_or_default();
                prop_assert_eq!(Some(&env.spec.repo), data.get(REPO_KEY));
                prop_assert_eq!(Some(&env.spec.branch), data.get(BRANCH_KEY));
                prop_assert!(!env.spec.path.is_empty());
            }
            Err(error) => {
                prop_assert!(error.field == "data" || error.field.starts_with("data.")
                    || error.field.starts_with("metadata."), "{}", error);
                prop_assert!(error.message.len() < 300);
            }
        }
    }
}
