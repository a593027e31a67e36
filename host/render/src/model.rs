//! Custom resources → the engine contract's model. This is where the host resolves what a
//! plugin must not decide or see: which address a backend means, where storage is, which
//! Secrets hold what.

use dbo_api::{Database, DbInstance, DbRestore};
use dbo_engine as engine;

use crate::RenderError;

pub fn instance(inst: &DbInstance) -> Result<engine::Instance, RenderError> {
    let name = inst.metadata.name.clone().unwrap_or_default();
    let spec = &inst.spec;
    let (backend, host, port, backup_host, region) = if let Some(g) = &spec.generic {
        (
            engine::BackendKind::Generic,
            g.host.clone(),
            g.port,
            g.backup_host.clone(),
            None,
        )
    } else if let Some(a) = &spec.amazon {
        (
            engine::BackendKind::Amazon,
            a.host.clone(),
            a.port,
            a.backup_host.clone(),
            Some(a.region.clone()),
        )
    } else if spec.google.is_some() {
        return Err(RenderError::invalid(
            format!("DbInstance {name}"),
            "spec.google",
            "Cloud SQL instances are accepted so manifests of the original operator parse, but \
             this operator runs no Cloud SQL proxy; run the proxy yourself and point \
             spec.generic.host/port at it",
        ));
    } else {
        return Err(RenderError::invalid(
            format!("DbInstance {name}"),
            "spec",
            "set exactly one of generic, amazon, google",
        ));
    };
    let ssl = spec.ssl_connection.as_ref();
    Ok(engine::Instance {
        name,
        engine: spec.engine.clone(),
        backend,
        backup_host: backup_host
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| host.clone()),
        host,
        port,
        region,
        tls: ssl.is_some_and(|s| s.enabled),
        tls_skip_verify: ssl.is_some_and(|s| s.skip_verify),
        monitoring: spec.monitoring.as_ref().is_some_and(|m| m.enabled),
        options: options_json(spec.options.as_ref()),
    })
}

pub fn database(db: &Database) -> engine::Database {
    let spec = &db.spec;
    engine::Database {
        namespace: namespace_of(db.metadata.namespace.as_deref()),
        name: db.metadata.name.clone().unwrap_or_default(),
        extensions: spec.extensions.clone(),
        schema: spec
            .commission
            .as_ref()
            .and_then(|c| c.schema.as_ref())
            .map(|s| engine::SchemaRef {
                config_map: s.config_map_ref.name.clone(),
                version: s.version,
            }),
        options: options_json(spec.options.as_ref()),
    }
}

/// The storage target of an instance, or `None` when it has none configured.
pub fn storage(inst: &DbInstance) -> Option<engine::Storage> {
    let backup = inst.spec.backup.as_ref()?;
    if let Some(s3) = &backup.s3 {
        let auth = if let Some(irsa) = &s3.auth.irsa {
            engine::S3Auth::Irsa(irsa.role_arn.clone())
        } else if let Some(k) = &s3.auth.access_key_secret {
            engine::S3Auth::AccessKey(engine::AccessKeySecret {
                name: k.name.clone(),
                access_key_id_key: k.access_key_id_key.clone(),
                secret_access_key_key: k.secret_access_key_key.clone(),
            })
        } else {
            engine::S3Auth::Ambient
        };
        let region = s3
            .region
            .clone()
            .or_else(|| inst.spec.amazon.as_ref().map(|a| a.region.clone()));
        return Some(engine::Storage::S3(engine::S3Target {
            bucket: s3.bucket.clone(),
            prefix: s3
                .prefix
                .as_deref()
                .unwrap_or_default()
                .trim_matches('/')
                .to_string(),
            region,
            endpoint: s3.endpoint.clone().filter(|e| !e.is_empty()),
            auth,
        }));
    }
    backup
        .bucket
        .clone()
        .filter(|b| !b.is_empty())
        .map(engine::Storage::Gcs)
}

pub fn snapshot(restore: &DbRestore) -> Result<engine::Snapshot, RenderError> {
    let s = &restore.spec.snapshot;
    match (&s.key, s.latest, &s.point_in_time) {
        (Some(key), None, None) => Ok(engine::Snapshot::Key(
            key.trim_start_matches('/').to_string(),
        )),
        (None, Some(true), None) => Ok(engine::Snapshot::Latest),
        (None, None, Some(t)) => Ok(engine::Snapshot::PointInTime(t.clone())),
        _ => Err(RenderError::invalid(
            object_name(
                "DbRestore",
                restore.metadata.namespace.as_deref(),
                restore.metadata.name.as_deref(),
            ),
            "spec.snapshot",
            "set exactly one of key, latest: true, pointInTime",
        )),
    }
}

fn options_json(v: Option<&serde_json::Value>) -> String {
    match v {
        Some(v) if !v.is_null() => v.to_string(),
        _ => "{}".to_string(),
    }
}

pub fn namespace_of(ns: Option<&str>) -> String {
    ns.filter(|n| !n.is_empty())
        .unwrap_or("default")
        .to_string()
}

/// How objects are named in messages: `Database app/orders`, `DbInstance pg`.
pub fn object_name(kind: &str, ns: Option<&str>, name: Option<&str>) -> String {
    let name = name.unwrap_or("<unnamed>");
    match ns {
        Some(ns) if !ns.is_empty() => format!("{kind} {ns}/{name}"),
        _ => format!("{kind} {name}"),
    }
}
