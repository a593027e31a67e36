//! Schemas roll forward: each new `spec.commission.schema.version` of a Database on an engine
//! that applies schemas (Elasticsearch) runs one new commissioning Job with that version's
//! files; the same version runs nothing; a lower one is refused. Runs against the in-process
//! API server, or a real cluster when `KUBECONFIG` is set.

mod common;

use std::time::Duration;

use common::*;
use dbo_api::{Database, DbInstance};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn instance(env: &Env) -> DbInstance {
    serde_json::from_value(json!({
        "apiVersion": "kci.rocks/v1alpha1", "kind": "DbInstance",
        "metadata": {"name": format!("{}-es", env.ns)},
        "spec": {
            "engine": "elasticsearch",
            "adminSecretRef": {"namespace": env.ns, "name": "admin"},
            "generic": {"host": "es.example", "port": 9200}
        }
    }))
    .expect("instance")
}

fn database(env: &Env, instance: &str, version: u32) -> Database {
    serde_json::from_value(json!({
        "apiVersion": "kci.rocks/v1alpha1", "kind": "Database",
        "metadata": {"name": "catalog", "namespace": env.ns},
        "spec": {
            "instance": instance,
            "secretName": "catalog-credentials",
            "backup": {"enable": false},
            "commission": {"schema": {"configMapRef": {"name": "catalog-schema"}, "version": version}}
        }
    }))
    .expect("database")
}

fn schema_config_map(env: &Env) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": "catalog-schema", "namespace": env.ns},
        "data": {"products.index-template.json": "{\"index_patterns\": [\"placeholder\"]}"}
    }))
    .expect("config map")
}

async fn commission_jobs(env: &Env) -> Vec<String> {
    let jobs: Api<Job> = env.api();
    let mut names: Vec<String> = jobs
        .list(
            &ListParams::default()
                .labels("app.kubernetes.io/component=commission,kci.rocks/database=catalog"),
        )
        .await
        .expect("jobs list")
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    names.sort();
    names
}

/// Waits for a commissioning Job other than those in `known`.
async fn new_commission_job(env: &Env, known: &[String]) -> Job {
    let jobs: Api<Job> = env.api();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let names = commission_jobs(env).await;
        if let Some(name) = names.iter().find(|n| !known.contains(n)) {
            return jobs.get(name).await.expect("job");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no new commissioning Job; there are {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The schema copy the Job's pod mounts, and the version it is told.
fn schema_of(job: &Job) -> (String, String) {
    let pod = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    let config_map = pod
        .volumes
        .iter()
        .flatten()
        .find_map(|v| v.config_map.as_ref().map(|c| c.name.clone()))
        .expect("a ConfigMap volume");
    let version = pod.containers[0]
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "SCHEMA_VERSION")
        .and_then(|e| e.value.clone())
        .expect("SCHEMA_VERSION");
    (config_map, version)
}

async fn set_version(dbs: &Api<Database>, version: u32) {
    dbs.patch(
        "catalog",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"commission": {"schema": {"version": version}}}})),
    )
    .await
    .expect("version is patched");
}

async fn commissioned_at(dbs: &Api<Database>, version: u32) -> Database {
    wait_for(
        dbs,
        "catalog",
        &format!("schema version {version} applied"),
        |d| {
            is(&db_condition(d, "Commissioned"), "True", "JobSucceeded")
                && d.status.as_ref().and_then(|s| s.schema_version) == Some(version)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_versions_roll_forward_once_each_and_never_back() {
    let env = Env::start("schema-roll-forward").await;
    env.create_admin_secret().await;
    let inst = instance(&env);
    env.instances()
        .create(&PostParams::default(), &inst)
        .await
        .expect("instance");
    let dbs: Api<Database> = env.api();
    let config_maps: Api<ConfigMap> = env.api();

    // A missing schema ConfigMap is named, and found once it exists.
    dbs.create(&PostParams::default(), &database(&env, &inst.name_any(), 1))
        .await
        .expect("database");
    let waiting = wait_for(&dbs, "catalog", "the missing ConfigMap reported", |d| {
        is(&db_condition(d, "Ready"), "False", "SchemaConfigMapMissing")
    })
    .await;
    let (_, _, message) = db_condition(&waiting, "Ready").expect("Ready");
    assert!(
        message.contains("spec.commission.schema.configMapRef.name")
            && message.contains("\"catalog-schema\" does not exist"),
        "{message}"
    );
    assert!(commission_jobs(&env).await.is_empty());
    config_maps
        .create(&PostParams::default(), &schema_config_map(&env))
        .await
        .expect("schema ConfigMap");

    // Version 1: Job A, with the version-1 copy.
    let a = new_commission_job(&env, &[]).await;
    let (copy_1, version) = schema_of(&a);
    assert_eq!(version, "1");
    let copy = config_maps
        .get(&copy_1)
        .await
        .expect("the version-1 copy exists");
    assert_eq!(
        copy.data
            .as_ref()
            .and_then(|d| d.get("products.index-template.json")),
        schema_config_map(&env)
            .data
            .as_ref()
            .and_then(|d| d.get("products.index-template.json"))
    );
    env.finish_job(&a.name_any(), true).await;
    commissioned_at(&dbs, 1).await;

    // Version 2: Job B; once it succeeded, Job A and the version-1 copy go.
    set_version(&dbs, 2).await;
    let b = new_commission_job(&env, &[a.name_any()]).await;
    let (copy_2, version) = schema_of(&b);
    assert_eq!(version, "2");
    assert_ne!(copy_1, copy_2);
    env.finish_job(&b.name_any(), true).await;
    commissioned_at(&dbs, 2).await;
    wait_gone(&env.api::<Job>(), &a.name_any(), "Job A").await;
    wait_gone(&config_maps, &copy_1, "the version-1 copy").await;

    // Version 2 again, with another change that bumps the generation: no new Job.
    let bumped = dbs
        .patch(
            "catalog",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"deletionProtected": true,
                "commission": {"schema": {"version": 2}}}})),
        )
        .await
        .expect("patched");
    let generation = bumped.metadata.generation;
    wait_for(&dbs, "catalog", "the new generation reconciled", |d| {
        d.status.as_ref().and_then(|s| s.observed_generation) == generation
    })
    .await;
    assert_eq!(commission_jobs(&env).await, [b.name_any()]);

    // Version 1 after 2: refused, and nothing runs.
    set_version(&dbs, 1).await;
    let refused = wait_for(&dbs, "catalog", "the downgrade refused", |d| {
        is(&db_condition(d, "Ready"), "False", "InvalidSpec")
    })
    .await;
    let (_, _, message) = db_condition(&refused, "Ready").expect("Ready");
    assert!(
        message.contains("spec.commission.schema.version")
            && message.contains("version 1 is lower than version 2"),
        "{message}"
    );
    assert_eq!(
        refused.status.as_ref().and_then(|s| s.schema_version),
        Some(2)
    );
    assert_eq!(commission_jobs(&env).await, [b.name_any()]);
    env.shutdown().await;
}
