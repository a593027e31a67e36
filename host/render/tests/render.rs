//! The renderer with a native stand-in engine: what the host adds, keeps and refuses,
//! independent of any real plugin.

use std::collections::BTreeMap;
use std::sync::Mutex;

use dbo_engine::*;
use dbo_render::{PasswordSource, render};
use serde_json::json;

/// An engine whose answers a test can bend, recording the requests it got.
struct Fake {
    backup_pod: serde_json::Value,
    commission_pod: Option<serde_json::Value>,
    warn: bool,
    /// Declares schema-roll-forward.
    schemas: bool,
    seen: Mutex<Vec<String>>,
}

impl Default for Fake {
    fn default() -> Self {
        Fake {
            backup_pod: json!({"containers": [{"name": "dump", "image": "img",
                "env": [{"name": "DB", "valueFrom": {"secretKeyRef": {"name": "orders-db", "key": "POSTGRES_DB"}}}]}]}),
            commission_pod: Some(json!({"containers": [{"name": "commission", "image": "img",
                "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "dbo-shop-orders-credentials", "key": "POSTGRES_PASSWORD"}}}]}],
                "volumes": [{"name": "admin", "secret": {"secretName": "pg-admin"}}]})),
            warn: false,
            schemas: false,
            seen: Mutex::new(Vec::new()),
        }
    }
}

fn job(pod: &serde_json::Value) -> JobSpec {
    JobSpec {
        pod_spec: pod.to_string(),
        backoff_limit: None,
        active_deadline_seconds: Some(120),
    }
}

impl Engine for Fake {
    fn describe(&self) -> Result<EngineInfo, CallError> {
        Ok(EngineInfo {
            name: "fake".into(),
            version: "1.0.0".into(),
            api_version: "0.1.0".into(),
            capabilities: if self.schemas {
                vec![Capability::Commission, Capability::SchemaRollForward]
            } else {
                vec![Capability::Commission]
            },
            images: Vec::new(),
            options_schema: "{}".into(),
        })
    }
    fn validate(&self, _: &Instance, db: Option<&Database>) -> Result<Vec<Diagnostic>, CallError> {
        Ok(if self.warn && db.is_some() {
            vec![Diagnostic {
                field: "spec.options.x".into(),
                severity: Severity::Warning,
                message: "x is deprecated".into(),
            }]
        } else {
            vec![]
        })
    }
    fn credentials(&self, _: &Instance, db: &Database) -> Result<CredentialLayout, CallError> {
        Ok(CredentialLayout {
            database_name: format!("{}-{}", db.namespace, db.name),
            user_name: format!("{}-{}", db.namespace, db.name),
            database_key: "POSTGRES_DB".into(),
            user_key: "POSTGRES_USER".into(),
            password_key: "POSTGRES_PASSWORD".into(),
            password_length: 24,
            templates: vec![(
                "DATABASE_URL".into(),
                "postgresql://{user}:{password}@{host}:{port}/{database}".into(),
            )],
        })
    }
    fn backup(&self, r: &BackupRequest) -> Result<JobSpec, CallError> {
        self.seen
            .lock()
            .unwrap()
            .push(format!("backup {:?}", r.storage));
        Ok(job(&self.backup_pod))
    }
    fn commission(&self, r: &CommissionRequest) -> Result<Option<JobSpec>, CallError> {
        self.seen.lock().unwrap().push(format!(
            "commission admin={} creds={}",
            r.admin.name, r.credentials.secret_name
        ));
        let Some(schema) = &r.database.schema else {
            return Ok(self.commission_pod.as_ref().map(job));
        };
        self.seen
            .lock()
            .unwrap()
            .push(format!("schema {} v{}", schema.config_map, schema.version));
        // Like a schema-applying engine: the copy is mounted and the version is in the env.
        let mut pod = self.commission_pod.clone().expect("a commissioning pod");
        pod["containers"][0]["env"]
            .as_array_mut()
            .expect("env")
            .push(json!({"name": "SCHEMA_VERSION", "value": schema.version.to_string()}));
        pod["volumes"]
            .as_array_mut()
            .expect("volumes")
            .push(json!({"name": "schema", "configMap": {"name": schema.config_map}}));
        Ok(Some(job(&pod)))
    }
    fn restore(&self, r: &RestoreRequest) -> Result<JobSpec, CallError> {
        self.seen
            .lock()
            .unwrap()
            .push(format!("restore {:?}", r.snapshot));
        Ok(job(&self.backup_pod))
    }
}

struct Counter(u32);
impl PasswordSource for Counter {
    fn generate(&mut self, length: usize) -> String {
        self.0 += 1;
        format!("{:0>width$}", self.0, width = length)
    }
}

const INSTANCE: &str = r#"
apiVersion: kci.rocks/v1alpha1
kind: DbInstance
metadata: {name: pg}
spec:
  engine: fake
  adminSecretRef: {namespace: db-operator, name: pg-admin}
  generic: {host: db.example, port: 6543}
  backup:
    s3:
      bucket: b
      prefix: /team/
      auth:
        accessKeySecret: {name: s3-keys, accessKeyIdKey: ID, secretAccessKeyKey: KEY}
"#;

fn database(extra: &str) -> String {
    format!(
        r#"
---
apiVersion: kci.rocks/v1alpha1
kind: Database
metadata: {{name: orders, namespace: shop, uid: 1111-2222}}
spec:
  instance: pg
  secretName: orders-db
  backup:
    enable: true
    cron: "0 1 * * *"
{extra}
"#
    )
}

fn go(yaml: &str, fake: Fake) -> (Result<dbo_render::Rendered, dbo_render::RenderErrors>, Fake) {
    let manifests = dbo_api::manifest::parse(yaml).expect("test manifest parses");
    let engines = BTreeMap::from([("fake".to_string(), fake)]);
    let out = render(&manifests, &engines, &mut Counter(0));
    let fake = engines.into_values().next().unwrap();
    (out, fake)
}

fn ok(yaml: &str) -> dbo_render::Rendered {
    go(yaml, Fake::default())
        .0
        .unwrap_or_else(|e| panic!("render failed: {e}"))
}

fn err(yaml: &str, fake: Fake) -> String {
    match go(yaml, fake).0 {
        Ok(_) => panic!("render should fail"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn database_gets_secret_commission_job_and_cron_job_in_the_right_places() {
    let (out, fake) = go(&format!("{INSTANCE}{}", database("")), Fake::default());
    let r = out.unwrap();
    let secret = &r.secrets[0];
    assert_eq!(secret.metadata.namespace.as_deref(), Some("shop"));
    assert_eq!(secret.metadata.name.as_deref(), Some("orders-db"));
    let data = secret.string_data.as_ref().unwrap();
    assert_eq!(data["POSTGRES_DB"], "shop-orders");
    assert_eq!(data["POSTGRES_PASSWORD"], "000000000000000000000001");
    assert_eq!(
        data["DATABASE_URL"],
        "postgresql://shop-orders:000000000000000000000001@db.example:6543/shop-orders"
    );
    // Commissioning runs beside the admin Secret, with a copy of the app credentials.
    let job = &r.jobs[0];
    assert_eq!(job.metadata.namespace.as_deref(), Some("db-operator"));
    assert!(
        job.metadata
            .name
            .as_deref()
            .unwrap()
            .starts_with("dbo-shop-orders-commission-")
    );
    assert!(
        job.metadata.owner_references.is_none(),
        "owner references cannot cross namespaces"
    );
    let labels = job.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["kci.rocks/database-namespace"], "shop");
    assert_eq!(labels["kci.rocks/database"], "orders");
    let copy = &r.secrets[1];
    assert_eq!(copy.metadata.namespace.as_deref(), Some("db-operator"));
    assert_eq!(
        copy.metadata.name.as_deref(),
        Some("dbo-shop-orders-credentials")
    );
    assert_eq!(
        copy.string_data.as_ref().unwrap()["POSTGRES_PASSWORD"],
        data["POSTGRES_PASSWORD"]
    );
    assert!(
        !copy
            .string_data
            .as_ref()
            .unwrap()
            .contains_key("DATABASE_URL")
    );
    let seen = fake.seen.lock().unwrap().clone();
    assert!(
        seen.contains(&"commission admin=pg-admin creds=dbo-shop-orders-credentials".to_string()),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|s| s.contains("prefix: \"team\"")),
        "prefix slashes trimmed: {seen:?}"
    );

    let cron = &r.cron_jobs[0];
    assert_eq!(cron.metadata.namespace.as_deref(), Some("shop"));
    assert_eq!(cron.metadata.name.as_deref(), Some("orders-backup"));
    let owner = &cron.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("Database", "1111-2222", Some(true))
    );
    assert_eq!(cron.spec.concurrency_policy.as_deref(), Some("Forbid"));
    assert_eq!(cron.spec.schedule, "0 1 * * *");
    let job = cron.spec.job_template.spec.as_ref().unwrap();
    assert_eq!(job.active_deadline_seconds, Some(120));
    assert_eq!(job.backoff_limit, Some(3));
    let pod = job.template.spec.as_ref().unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.automount_service_account_token, Some(false));
    let sc = pod.containers[0].security_context.as_ref().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
}

#[test]
fn an_existing_secret_keeps_its_password_and_foreign_keys() {
    let yaml = format!(
        "{INSTANCE}{}---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: orders-db\n  namespace: shop\n  annotations: {{team: payments}}\nstringData:\n  POSTGRES_PASSWORD: kept-password\n  EXTRA: mine\n",
        database("")
    );
    let r = ok(&yaml);
    let s = &r.secrets[0];
    let data = s.string_data.as_ref().unwrap();
    assert_eq!(data["POSTGRES_PASSWORD"], "kept-password");
    assert_eq!(data["EXTRA"], "mine");
    assert_eq!(s.metadata.annotations.as_ref().unwrap()["team"], "payments");
    assert!(data["DATABASE_URL"].contains("kept-password"));
}

#[test]
fn irsa_gets_an_annotated_service_account() {
    let yaml = INSTANCE.replace(
        "accessKeySecret: {name: s3-keys, accessKeyIdKey: ID, secretAccessKeyKey: KEY}",
        "irsa: {roleArn: 'arn:aws:iam::1:role/backup'}",
    ) + &database("");
    let r = ok(&yaml);
    let sa = &r.service_accounts[0];
    assert_eq!(sa.metadata.name.as_deref(), Some("orders-backup"));
    assert_eq!(
        sa.metadata.annotations.as_ref().unwrap()["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::1:role/backup"
    );
    let pod = r.cron_jobs[0]
        .spec
        .job_template
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("orders-backup"));
}

#[test]
fn user_backup_options_are_merged_into_the_engine_pod() {
    let r = ok(&format!(
        "{INSTANCE}{}",
        database(
            "    containerName: my-dump\n    fsGroup: 1234\n    serviceAccountName: backup-sa\n    persistentVolumeClaim: {claimName: scratch, mountPath: /scratch}\n    volumes: [{name: extra, emptyDir: {}}]\n    volumeMounts: [{name: extra, mountPath: /extra}]\n    resources: {limits: {memory: 1Gi}}"
        )
    ));
    let pod = r.cron_jobs[0]
        .spec
        .job_template
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    let c = &pod.containers[0];
    assert_eq!(c.name, "my-dump");
    let mounts: Vec<_> = c
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.mount_path.as_str())
        .collect();
    assert_eq!(mounts, ["/extra", "/scratch"]);
    assert_eq!(pod.security_context.as_ref().unwrap().fs_group, Some(1234));
    assert_eq!(pod.service_account_name.as_deref(), Some("backup-sa"));
    assert!(
        c.resources
            .as_ref()
            .unwrap()
            .limits
            .as_ref()
            .unwrap()
            .contains_key("memory")
    );
    let vols: Vec<_> = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(vols, ["extra", "backup-pvc"]);
}

#[test]
fn a_mount_without_its_volume_names_the_field() {
    let e = err(
        &format!(
            "{INSTANCE}{}",
            database("    volumeMounts: [{name: nowhere, mountPath: /x}]")
        ),
        Fake::default(),
    );
    assert!(
        e.contains("Database shop/orders: spec.backup.volumeMounts[0].name"),
        "{e}"
    );
}

#[test]
fn plugin_output_that_breaks_policy_is_refused() {
    let fake = Fake {
        backup_pod: json!({"hostNetwork": true, "containers": [{"name": "c", "image": "i",
            "securityContext": {"privileged": true},
            "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "someone-elses", "key": "k"}}}]}]}),
        ..Fake::default()
    };
    let e = err(&format!("{INSTANCE}{}", database("")), fake);
    assert!(
        e.contains("engine fake returned a pod spec the host refuses"),
        "{e}"
    );
    assert!(e.contains("hostNetwork"), "{e}");
    assert!(e.contains("privileged"), "{e}");
    assert!(e.contains("someone-elses"), "{e}");
}

#[test]
fn plugin_output_that_is_not_a_pod_spec_is_refused() {
    let fake = Fake {
        backup_pod: json!({"containers": "not a list"}),
        ..Fake::default()
    };
    let e = err(&format!("{INSTANCE}{}", database("")), fake);
    assert!(e.contains("not valid JSON for a PodSpec"), "{e}");
}

#[test]
fn backups_without_storage_are_refused() {
    let instance = INSTANCE.split("  backup:").next().unwrap().to_string();
    let e = err(&format!("{instance}{}", database("")), Fake::default());
    assert!(e.contains("spec.backup.enable"), "{e}");
    assert!(e.contains("no spec.backup.s3"), "{e}");
}

#[test]
fn disabled_backup_renders_no_cron_job() {
    let yaml = format!("{INSTANCE}{}", database("")).replace("enable: true", "enable: false");
    let r = ok(&yaml);
    assert!(r.cron_jobs.is_empty());
    assert_eq!(r.jobs.len(), 1);
}

#[test]
fn engine_warnings_are_reported_with_their_object() {
    let fake = Fake {
        warn: true,
        ..Fake::default()
    };
    let r = go(&format!("{INSTANCE}{}", database("")), fake).0.unwrap();
    assert_eq!(
        r.warnings,
        ["Database shop/orders: spec.options.x: x is deprecated"]
    );
}

#[test]
fn restore_forms_reach_the_engine_and_the_job_is_owned_by_the_restore() {
    for (snapshot, expected) in [
        (
            "{key: team/shop-orders/shop-orders-20261201T000000Z.dump}",
            "Key(\"team/shop-orders/shop-orders-20261201T000000Z.dump\")",
        ),
        ("{latest: true}", "Latest"),
        (
            "{pointInTime: '2026-12-01T10:00:00Z'}",
            "PointInTime(\"2026-12-01T10:00:00Z\")",
        ),
    ] {
        let yaml = format!(
            "{INSTANCE}{}---\napiVersion: kci.rocks/v1alpha1\nkind: DbRestore\nmetadata: {{name: back, namespace: shop, uid: r-1}}\nspec:\n  database: orders\n  snapshot: {snapshot}\n",
            database("")
        );
        let (out, fake) = go(&yaml, Fake::default());
        let r = out.unwrap_or_else(|e| panic!("{snapshot}: {e}"));
        let job = r
            .jobs
            .iter()
            .find(|j| j.metadata.name.as_deref() == Some("back-restore"))
            .expect("restore job");
        assert_eq!(job.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(
            job.metadata.owner_references.as_ref().unwrap()[0].kind,
            "DbRestore"
        );
        let seen = fake.seen.lock().unwrap().clone();
        assert!(seen.contains(&format!("restore {expected}")), "{seen:?}");
    }
}

#[test]
fn a_restore_of_a_missing_database_is_refused() {
    let yaml = format!(
        "{INSTANCE}---\napiVersion: kci.rocks/v1alpha1\nkind: DbRestore\nmetadata: {{name: back, namespace: shop}}\nspec:\n  database: orders\n  snapshot: {{latest: true}}\n"
    );
    let e = err(&yaml, Fake::default());
    assert!(e.contains("DbRestore shop/back: spec.database"), "{e}");
}

#[test]
fn all_errors_are_reported_at_once() {
    let yaml = format!(
        "{INSTANCE}{}---\napiVersion: kci.rocks/v1alpha1\nkind: Database\nmetadata: {{name: two, namespace: shop}}\nspec: {{instance: nope, secretName: two}}\n",
        database("").replace("0 1 * * *", "61 * * * *")
    );
    let e = err(&yaml, Fake::default());
    assert!(e.contains("spec.backup.cron"), "{e}");
    assert!(e.contains("Database shop/two: spec.instance"), "{e}");
}

const SCHEMA_CONFIG_MAP: &str = r#"
---
apiVersion: v1
kind: ConfigMap
metadata: {name: orders-schema, namespace: shop}
data:
  orders.index-template.json: '{"index_patterns": ["shop-orders-*"]}'
"#;

fn schema_database(version: u32, applied: Option<u32>) -> String {
    let status = applied
        .map(|v| format!("status:\n  schemaVersion: {v}\n"))
        .unwrap_or_default();
    format!(
        r#"
---
apiVersion: kci.rocks/v1alpha1
kind: Database
metadata: {{name: orders, namespace: shop, uid: 1111-2222}}
spec:
  instance: pg
  secretName: orders-db
  commission:
    schema:
      configMapRef: {{name: orders-schema}}
      version: {version}
{status}"#
    )
}

fn schema_fake() -> Fake {
    Fake {
        schemas: true,
        ..Fake::default()
    }
}

fn commission_job_name(r: &dbo_render::Rendered) -> String {
    r.jobs[0].metadata.name.clone().expect("job name")
}

#[test]
fn a_schema_is_copied_beside_the_job_under_a_versioned_name() {
    let yaml = format!("{INSTANCE}{}{SCHEMA_CONFIG_MAP}", schema_database(2, None));
    let (out, fake) = go(&yaml, schema_fake());
    let r = out.unwrap_or_else(|e| panic!("render failed: {e}"));
    assert_eq!(r.config_maps.len(), 1);
    let copy = &r.config_maps[0];
    assert_eq!(
        copy.metadata.name.as_deref(),
        Some("dbo-shop-orders-schema-v2")
    );
    assert_eq!(copy.metadata.namespace.as_deref(), Some("db-operator"));
    assert_eq!(copy.immutable, Some(true));
    assert_eq!(
        copy.data
            .as_ref()
            .and_then(|d| d.get("orders.index-template.json"))
            .map(String::as_str),
        Some(r#"{"index_patterns": ["shop-orders-*"]}"#)
    );
    let seen = fake.seen.lock().unwrap().clone();
    assert!(
        seen.contains(&"schema dbo-shop-orders-schema-v2 v2".to_string()),
        "the engine is told the copy's name: {seen:?}"
    );
    let objects = r.objects();
    let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    let cm = kinds
        .iter()
        .position(|k| *k == "ConfigMap")
        .expect("ConfigMap");
    let job = kinds.iter().position(|k| *k == "Job").expect("Job");
    assert!(cm < job, "the copy is applied before its Job: {kinds:?}");
}

#[test]
fn a_new_schema_version_is_a_new_job_and_the_same_version_the_same_job() {
    let render = |version, applied| {
        let yaml = format!(
            "{INSTANCE}{}{SCHEMA_CONFIG_MAP}",
            schema_database(version, applied)
        );
        go(&yaml, schema_fake())
            .0
            .unwrap_or_else(|e| panic!("render failed: {e}"))
    };
    let v1 = commission_job_name(&render(1, None));
    let v2 = commission_job_name(&render(2, Some(1)));
    let v2_again = commission_job_name(&render(2, Some(2)));
    assert_ne!(v1, v2);
    assert_eq!(v2, v2_again);
}

#[test]
fn a_lower_schema_version_than_the_applied_one_is_refused() {
    let yaml = format!(
        "{INSTANCE}{}{SCHEMA_CONFIG_MAP}",
        schema_database(1, Some(2))
    );
    let e = err(&yaml, schema_fake());
    assert!(
        e.contains("spec.commission.schema.version: version 1 is lower than version 2"),
        "{e}"
    );
    assert!(e.contains("as version 3"), "{e}");
}

#[test]
fn a_missing_schema_config_map_names_the_field() {
    let yaml = format!("{INSTANCE}{}", schema_database(1, None));
    let e = err(&yaml, schema_fake());
    assert!(
        e.contains("spec.commission.schema.configMapRef.name: ConfigMap \"orders-schema\" does not exist in namespace \"shop\""),
        "{e}"
    );
}

#[test]
fn a_schema_for_an_engine_that_applies_none_is_refused() {
    let yaml = format!("{INSTANCE}{}{SCHEMA_CONFIG_MAP}", schema_database(1, None));
    let e = err(&yaml, Fake::default());
    assert!(
        e.contains("spec.commission.schema: engine fake does not apply schemas"),
        "{e}"
    );
}
