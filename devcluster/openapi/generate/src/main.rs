//! Generates `devcluster/openapi/definitions.json`: every schema reachable from the types devcluster
//! serves (plus the meta types its operations use), keyed by their Kubernetes definition name, with
//! references of the OpenAPI v3 form `#/components/schemas/NAME`. devcluster adds the list kinds,
//! the `x-kubernetes-*` extensions clients rely on, and the paths at run time.

use k8s_openapi::api::{apps, coordination, core, events, networking, policy, rbac};
use k8s_openapi::apimachinery::pkg::apis::meta;
use schemars::generate::SchemaSettings;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut generator = SchemaSettings::openapi3()
        .with(|settings| settings.meta_schema = None)
        .into_generator();
    // Served kinds (keep in step with devcluster/src/resources.rs).
    generator.subschema_for::<core::v1::ConfigMap>();
    generator.subschema_for::<core::v1::Secret>();
    generator.subschema_for::<core::v1::Service>();
    generator.subschema_for::<core::v1::Pod>();
    generator.subschema_for::<core::v1::Namespace>();
    generator.subschema_for::<core::v1::ServiceAccount>();
    generator.subschema_for::<core::v1::Event>();
    generator.subschema_for::<events::v1::Event>();
    generator.subschema_for::<apps::v1::Deployment>();
    generator.subschema_for::<networking::v1::Ingress>();
    generator.subschema_for::<networking::v1::NetworkPolicy>();
    generator.subschema_for::<rbac::v1::Role>();
    generator.subschema_for::<rbac::v1::RoleBinding>();
    generator.subschema_for::<coordination::v1::Lease>();
    generator.subschema_for::<policy::v1::PodDisruptionBudget>();
    // Types the operations take or return.
    generator.subschema_for::<meta::v1::ListMeta>();
    generator.subschema_for::<meta::v1::Status>();
    generator.subschema_for::<meta::v1::DeleteOptions>();
    generator.subschema_for::<meta::v1::Patch>();
    generator.subschema_for::<meta::v1::WatchEvent<serde_json::Value>>();
    generator.subschema_for::<meta::v1::APIResourceList>();
    generator.subschema_for::<meta::v1::APIGroupList>();
    generator.subschema_for::<meta::v1::APIGroup>();
    generator.subschema_for::<meta::v1::APIVersions>();

    let definitions = generator.take_definitions(true);
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../definitions.json");
    let mut text = serde_json::to_string_pretty(&definitions)?;
    text.push('\n');
    std::fs::write(&out, text)?;
    println!(
        "wrote {} definitions to {}",
        definitions.len(),
        out.display()
    );
    Ok(())
}
