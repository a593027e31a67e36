//! Semantic validation: every problem is reported, each names its field and says how to fix it.

use dbo_api::{
    Database, DbInstance, DbRestore, FieldError, validate_database, validate_instance,
    validate_restore,
};

fn instance(spec: &str) -> DbInstance {
    let yaml = format!(
        "apiVersion: kci.rocks/v1alpha1\nkind: DbInstance\nmetadata: {{name: pg}}\nspec:\n{}",
        indent(spec)
    );
    serde_yaml::from_str(&yaml).expect("test instance parses")
}

fn database(spec: &str) -> Database {
    let yaml = format!(
        "apiVersion: kci.rocks/v1alpha1\nkind: Database\nmetadata: {{name: app, namespace: apps}}\nspec:\n{}",
        indent(spec)
    );
    serde_yaml::from_str(&yaml).expect("test database parses")
}

fn restore(spec: &str) -> DbRestore {
    let yaml = format!(
        "apiVersion: kci.rocks/v1alpha1\nkind: DbRestore\nmetadata: {{name: back, namespace: apps}}\nspec:\n{}",
        indent(spec)
    );
    serde_yaml::from_str(&yaml).expect("test restore parses")
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

const ADMIN: &str = "engine: postgres\nadminSecretRef: {namespace: db-operator, name: pg-admin}\n";

/// The single error on `field`; fails when there is none or several.
fn only_error_on<'a>(errors: &'a [FieldError], field: &str) -> &'a str {
    let on: Vec<&FieldError> = errors.iter().filter(|e| e.field == field).collect();
    assert_eq!(
        on.len(),
        1,
        "expected one error on {field}, got {errors:#?}"
    );
    &on[0].message
}

#[test]
fn a_complete_instance_is_valid() {
    let pg = instance(&format!(
        "{ADMIN}generic: {{host: pg.db.svc, port: 5432, backupHost: pg-replica.db.svc}}\n\
         backup:\n  s3:\n    bucket: backups\n    prefix: prod/\n    endpoint: https://minio:9000\n    auth: {{accessKeySecret: {{name: s3-creds}}}}\n\
         options: {{sslMode: require}}"
    ));
    assert_eq!(validate_instance(&pg), []);
}

#[test]
fn two_backends_are_named() {
    let pg = instance(&format!(
        "{ADMIN}generic: {{host: a, port: 5432}}\namazon: {{host: b, port: 5432, region: eu-west-1}}"
    ));
    let errors = validate_instance(&pg);
    assert_eq!(
        only_error_on(&errors, "spec"),
        "set exactly one of generic, amazon, google; found generic and amazon"
    );
    assert_eq!(
        errors[0].to_string(),
        "spec: set exactly one of generic, amazon, google; found generic and amazon"
    );
}

#[test]
fn a_missing_backend_is_named() {
    let errors = validate_instance(&instance(ADMIN));
    assert_eq!(
        only_error_on(&errors, "spec"),
        "set exactly one of generic, amazon, google; found none"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let pg = instance(
        "engine: Postgres\nadminSecretRef: {namespace: '', name: pg-admin}\ngeneric: {host: '', port: 0}",
    );
    let errors = validate_instance(&pg);
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.engine",
            "spec.adminSecretRef.namespace",
            "spec.generic.host",
            "spec.generic.port"
        ]
    );
}

#[test]
fn instance_field_problems_name_the_field_and_the_fix() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "generic: {host: 'pg.db.svc:5432', port: 5432}",
            "spec.generic.host",
            "includes a port; write the host \"pg.db.svc\" here and 5432 in spec.generic.port",
        ),
        (
            "generic: {host: 'postgres://pg.db.svc', port: 5432}",
            "spec.generic.host",
            "write the host alone, e.g. \"pg.db.svc\"",
        ),
        (
            "generic: {host: pg, port: 0}",
            "spec.generic.port",
            "must be between 1 and 65535",
        ),
        (
            "amazon: {host: 'db.rds.amazonaws.com:5432', port: 5432, region: eu-west-1}",
            "spec.amazon.host",
            "aws_db_instance.address, not .endpoint",
        ),
        (
            "amazon: {host: db.rds.amazonaws.com, port: 5432, region: ''}",
            "spec.amazon.region",
            "e.g. \"eu-central-1\"",
        ),
        (
            "amazon: {host: h, port: 27017, region: r, caBundle: {name: Bad_Name, key: ca.pem}}",
            "spec.amazon.caBundle.name",
            "\"Bad_Name\" is not valid here",
        ),
        (
            "google: {instance: pg1, configmapRef: {namespace: ns, name: ''}}",
            "spec.google.configmapRef.name",
            "must not be empty",
        ),
        (
            "google: {instance: pg1, configmapRef: {namespace: ns, name: c}, apiEndpoint: 'localhost:8080'}",
            "spec.google.apiEndpoint",
            "not an http(s) URL",
        ),
        (
            "generic: {host: h, port: 1}\nbackup: {bucket: gcs, s3: {bucket: b, auth: {ambient: {}}}}",
            "spec.backup",
            "set exactly one of s3, bucket; found s3 and bucket",
        ),
        (
            "generic: {host: h, port: 1}\nbackup: {}",
            "spec.backup",
            "found none",
        ),
        (
            "generic: {host: h, port: 1}\nbackup: {s3: {bucket: b, auth: {}}}",
            "spec.backup.s3.auth",
            "set exactly one of irsa, accessKeySecret, ambient; found none",
        ),
        (
            "generic: {host: h, port: 1}\nbackup: {s3: {bucket: b, auth: {ambient: {}, irsa: {roleArn: 'arn:aws:iam::1:role/r'}}}}",
            "spec.backup.s3.auth",
            "found irsa and ambient",
        ),
        (
            "generic: {host: h, port: 1}\nbackup: {s3: {bucket: acme/prod, auth: {ambient: {}}}}",
            "spec.backup.s3.bucket",
            "set bucket to \"acme\" and prefix to \"prod\"",
        ),
        (
            "generic: {host: h, port: 1}\nbackup: {s3: {bucket: b, endpoint: 'minio:9000', auth: {ambient: {}}}}",
            "spec.backup.s3.endpoint",
            "not an http(s) URL",
        ),
        (
            "generic: {host: h, port: 1}\nbackup: {s3: {bucket: b, auth: {irsa: {roleArn: db-backups}}}}",
            "spec.backup.s3.auth.irsa.roleArn",
            "arn:aws:iam::<account>:role/<name>",
        ),
        (
            "generic: {host: h, port: 1}\nbackup: {s3: {bucket: b, auth: {accessKeySecret: {name: s, accessKeyIdKey: 'has space'}}}}",
            "spec.backup.s3.auth.accessKeySecret.accessKeyIdKey",
            "\"has space\" is not valid here",
        ),
        (
            "generic: {host: h, port: 1}\noptions: [a, b]",
            "spec.options",
            "must be an object of engine settings",
        ),
    ];
    for (spec, field, says) in cases {
        let errors = validate_instance(&instance(&format!("{ADMIN}{spec}")));
        let message = only_error_on(&errors, field);
        assert!(
            message.contains(says),
            "{field}: {message:?} lacks {says:?}"
        );
    }
}

#[test]
fn an_instance_without_name_is_reported() {
    let mut pg = instance(&format!("{ADMIN}generic: {{host: h, port: 1}}"));
    pg.metadata.name = None;
    let errors = validate_instance(&pg);
    assert!(only_error_on(&errors, "metadata.name").contains("must not be empty"));
}

const DB: &str = "instance: pg\nsecretName: app-creds\n";

#[test]
fn a_complete_database_is_valid() {
    let app = database(&format!(
        "{DB}extensions: [pgcrypto]\n\
         backup:\n  enable: true\n  cron: '0 3 * * *'\n  volumes: [{{name: certs, secret: {{secretName: certs}}}}]\n  volumeMounts: [{{name: certs, mountPath: /certs}}]\n  persistentVolumeClaim: {{claimName: scratch, mountPath: /backup}}\n\
         commission: {{schema: {{configMapRef: {{name: app-schema}}, version: 2}}}}"
    ));
    assert_eq!(validate_database(&app), []);
}

#[test]
fn disabled_backups_of_the_original_operator_need_no_schedule() {
    let app = database(&format!("{DB}backup: {{enable: false, cron: ''}}"));
    assert_eq!(validate_database(&app), []);
}

#[test]
fn a_bad_schedule_shows_the_value_and_an_example() {
    let app = database(&format!("{DB}backup: {{enable: true, cron: '0 3 * *'}}"));
    let errors = validate_database(&app);
    assert_eq!(
        errors[0].to_string(),
        "spec.backup.cron: \"0 3 * *\" is not a valid schedule: it has 4 fields, a schedule has 5; \
         write 5 fields (minute hour day-of-month month day-of-week), e.g. \"0 3 * * *\" for 03:00 every day"
    );
}

#[test]
fn database_field_problems_name_the_field_and_the_fix() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "instance: ''\nsecretName: s",
            "spec.instance",
            "must not be empty; set it to the name of a DbInstance",
        ),
        (
            "instance: pg\nsecretName: App_Creds",
            "spec.secretName",
            "\"App_Creds\" is not valid here; use at most 253 lower-case letters",
        ),
        (
            "extensions: [pgcrypto, pgcrypto]",
            "spec.extensions[1]",
            "\"pgcrypto\" is listed twice",
        ),
        (
            "backup: {enable: true}",
            "spec.backup.cron",
            "backups are enabled but no schedule is set",
        ),
        (
            "backup: {enable: true, cron: '0 0 L * *'}",
            "spec.backup.cron",
            "the day-of-month field \"L\" is not supported",
        ),
        (
            "backup: {cron: '0 0 * * *', volumeMounts: [{name: certs, mountPath: /certs}]}",
            "spec.backup.volumeMounts[0].name",
            "\"certs\" is not one of spec.backup.volumes (there are none)",
        ),
        (
            "backup: {cron: '0 0 * * *', volumes: [{name: certs, emptyDir: {}}], volumeMounts: [{name: certs, mountPath: certs}]}",
            "spec.backup.volumeMounts[0].mountPath",
            "\"certs\" is not an absolute path",
        ),
        (
            "backup: {cron: '0 0 * * *', volumes: [{name: a, emptyDir: {}}, {name: a, emptyDir: {}}]}",
            "spec.backup.volumes[1].name",
            "\"a\" is used by another volume",
        ),
        (
            "backup: {cron: '0 0 * * *', persistentVolumeClaim: {claimName: scratch, mountPath: backup}}",
            "spec.backup.persistentVolumeClaim.mountPath",
            "start it with '/'",
        ),
        (
            "backup: {cron: '0 0 * * *', volumes: [{name: a, emptyDir: {}}], volumeMounts: [{name: a, mountPath: /backup}], persistentVolumeClaim: {claimName: s, mountPath: /backup/}}",
            "spec.backup.persistentVolumeClaim.mountPath",
            "already mounted by spec.backup.volumeMounts[0].mountPath",
        ),
        (
            "backup: {cron: '0 0 * * *', fsGroup: -1}",
            "spec.backup.fsGroup",
            "is negative",
        ),
        (
            "backup: {cron: '0 0 * * *', containerName: Dump}",
            "spec.backup.containerName",
            "at most 63 lower-case letters",
        ),
        (
            "commission: {schema: {configMapRef: {name: s}, version: 0}}",
            "spec.commission.schema.version",
            "must be at least 1",
        ),
        (
            "options: 'dropPublicSchema'",
            "spec.options",
            "found a string",
        ),
    ];
    for (spec, field, says) in cases {
        let full = if spec.starts_with("instance:") {
            spec.to_string()
        } else {
            format!("{DB}{spec}")
        };
        let errors = validate_database(&database(&full));
        let message = only_error_on(&errors, field);
        assert!(
            message.contains(says),
            "{field}: {message:?} lacks {says:?}"
        );
    }
}

#[test]
fn restores() {
    assert_eq!(
        validate_restore(&restore("database: app\nsnapshot: {latest: true}")),
        []
    );
    assert_eq!(
        validate_restore(&restore(
            "database: app\nsnapshot: {pointInTime: '2024-05-01T12:00:00+02:00'}"
        )),
        []
    );
    let cases: &[(&str, &str, &str)] = &[
        (
            "database: app\nsnapshot: {}",
            "spec.snapshot",
            "set exactly one of key, latest, pointInTime; found none",
        ),
        (
            "database: app\nsnapshot: {key: a.dump, pointInTime: '2024-05-01T12:00:00Z'}",
            "spec.snapshot",
            "found key and pointInTime",
        ),
        (
            "database: app\nsnapshot: {latest: false}",
            "spec.snapshot.latest",
            "only `true` is allowed",
        ),
        (
            "database: app\nsnapshot: {pointInTime: '2024-05-01 12:00'}",
            "spec.snapshot.pointInTime",
            "\"2024-05-01 12:00\" is not an RFC 3339 time",
        ),
        (
            "database: app\nsnapshot: {key: /prod/app.dump}",
            "spec.snapshot.key",
            "write \"prod/app.dump\"",
        ),
        (
            "database: ''\nsnapshot: {latest: true}",
            "spec.database",
            "must not be empty",
        ),
    ];
    for (spec, field, says) in cases {
        let errors = validate_restore(&restore(spec));
        let message = only_error_on(&errors, field);
        assert!(
            message.contains(says),
            "{field}: {message:?} lacks {says:?}"
        );
    }
}
