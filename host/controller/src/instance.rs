//! The DbInstance controller: the spec is checked by the host and the engine plugin, the admin
//! Secret must exist, and the status names the plugin that serves the instance.

use std::collections::BTreeMap;
use std::sync::Arc;

use dbo_api::{Backend, DbInstance, DbInstanceStatus};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;

use crate::apply;
use crate::catalog::Single;
use crate::conditions::{self as cond, Want};
use crate::context::Context;
use crate::{Blocked, Error};

pub async fn reconcile(inst: Arc<DbInstance>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = inst.name_any();
    let key = format!("DbInstance/{name}");
    let api: Api<DbInstance> = Api::all(ctx.client.clone());
    let before = inst.status.clone().unwrap_or_default();
    let mut status = before.clone();

    let (want, phase, action, retried) = match check(&inst, &ctx, &mut status).await? {
        Ok(()) => (
            Want::new(
                cond::READY,
                true,
                "Ready",
                format!(
                    "engine {} accepted the spec; admin Secret present",
                    inst.spec.engine
                ),
            ),
            "Ready",
            Action::requeue(ctx.config.resync),
            false,
        ),
        Err(Blocked {
            reason,
            message,
            retry,
        }) => {
            ctx.metrics.failed("dbinstance", reason);
            let action = if retry {
                ctx.backoff(&key)
            } else {
                Action::requeue(ctx.config.recheck)
            };
            (
                Want::new(cond::READY, false, reason, message),
                if reason == "AdminSecretMissing" {
                    "Pending"
                } else {
                    "Invalid"
                },
                action,
                retry,
            )
        }
    };
    cond::set(
        &mut status.conditions,
        &want,
        inst.metadata.generation,
        Timestamp::now(),
    );
    status.phase = Some(phase.into());
    status.observed_generation = inst.metadata.generation;
    apply::report(
        &ctx,
        &api,
        inst.as_ref(),
        apply::StatusChange {
            before: &before,
            after: &status,
            conditions: |s: &DbInstanceStatus| &s.conditions,
        },
        "Validate",
        |t| !t.status,
    )
    .await?;
    if !retried {
        ctx.succeeded(&key);
    }
    Ok(action)
}

async fn check(
    inst: &DbInstance,
    ctx: &Context,
    status: &mut DbInstanceStatus,
) -> Result<Result<(), Blocked>, Error> {
    let Some(served) = ctx.catalog.engine(&inst.spec.engine) else {
        status.engine = None;
        if let Some(why) = ctx.catalog.refused(&inst.spec.engine) {
            return Ok(Err(Blocked::new(
                "PluginRefused",
                format!("spec.engine: {why}"),
                false,
            )));
        }
        return Ok(Err(Blocked::new(
            "EngineUnavailable",
            format!(
                "spec.engine: no engine plugin {:?} is loaded; available: {}",
                inst.spec.engine,
                ctx.catalog.names().join(", ")
            ),
            false,
        )));
    };
    status.engine = Some(served.plugin.clone());
    status.info = info(inst);

    let checked = {
        let inst = inst.clone();
        let engine = served.engine.clone();
        let names = ctx.catalog.names();
        tokio::task::spawn_blocking(move || {
            let single = Single {
                name: &inst.spec.engine,
                engine: engine.as_ref(),
                all_names: names,
            };
            dbo_render::check_instance(&inst, &single).map(|(_, warnings)| warnings)
        })
        .await
        .map_err(|e| Error::Join(e.to_string()))?
    };
    match checked {
        Ok(warnings) => {
            for w in warnings {
                tracing::warn!(instance = %inst.name_any(), "{w}");
            }
        }
        Err(e) => {
            return Ok(Err(Blocked::render(&e)));
        }
    }

    let admin = &inst.spec.admin_secret_ref;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &admin.namespace);
    if secrets.get_opt(&admin.name).await?.is_none() {
        return Ok(Err(Blocked::new(
            "AdminSecretMissing",
            format!(
                "spec.adminSecretRef: Secret {}/{} does not exist; create it with the server's admin user and password",
                admin.namespace, admin.name
            ),
            false,
        )));
    }
    Ok(Ok(()))
}

/// Connection facts for consumers, under the original operator's keys.
fn info(inst: &DbInstance) -> BTreeMap<String, String> {
    let mut info = BTreeMap::new();
    match inst.spec.backend() {
        Some(Backend::Generic(g)) => {
            info.insert("DB_CONN".into(), g.host.clone());
            info.insert("DB_PORT".into(), g.port.to_string());
            if let Some(ip) = &g.public_ip {
                info.insert("DB_PUBLIC_IP".into(), ip.clone());
            }
        }
        Some(Backend::Amazon(a)) => {
            info.insert("DB_CONN".into(), a.host.clone());
            info.insert("DB_PORT".into(), a.port.to_string());
        }
        _ => {}
    }
    info
}
