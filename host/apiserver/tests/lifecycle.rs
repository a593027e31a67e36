//! Deletion as a cluster does it: finalizers, owner-reference garbage collection, namespace
//! termination; and events written through events.k8s.io read back as core Events.

mod common;

use std::time::Duration;

use common::{api_error, start, start_with_crds};
use dbo_api::{DbInstance, DbInstanceSpec, GenericBackend, NamespacedName};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent, Namespace};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

/// Polls until `check` holds; the deadline only guards against a hang.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn gone(cms: &Api<ConfigMap>, name: &str) -> bool {
    matches!(cms.get_opt(name).await, Ok(None))
}

fn config_map(value: serde_json::Value) -> ConfigMap {
    serde_json::from_value(value).expect("valid ConfigMap")
}

async fn instance(client: &Client, name: &str) -> DbInstance {
    let api: Api<DbInstance> = Api::all(client.clone());
    let spec = DbInstanceSpec {
        engine: "postgres".into(),
        admin_secret_ref: NamespacedName::new("default", "admin"),
        generic: Some(GenericBackend {
            host: "db.example".into(),
            port: 5432,
            ..GenericBackend::default()
        }),
        ..DbInstanceSpec::default()
    };
    api.create(&PostParams::default(), &DbInstance::new(name, spec))
        .await
        .expect("instance created")
}

fn owned_by(name: &str, owner: &DbInstance, finalizers: &[&str]) -> ConfigMap {
    config_map(json!({
        "metadata": {
            "name": name,
            "finalizers": finalizers,
            "ownerReferences": [owner.controller_owner_ref(&()).expect("owner has a uid")],
        },
    }))
}

#[tokio::test]
async fn finalizers_hold_a_deleted_object_until_they_are_removed() {
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    cms.create(
        &PostParams::default(),
        &config_map(
            json!({ "metadata": { "name": "held", "finalizers": ["example.com/cleanup"] } }),
        ),
    )
    .await
    .expect("created");
    let mut stream = cms
        .watch(&WatchParams::default().fields("metadata.name=held"), "0")
        .await
        .expect("watching")
        .boxed();
    assert!(matches!(
        stream.next().await,
        Some(Ok(WatchEvent::Added(_)))
    ));

    let deleted = cms
        .delete("held", &DeleteParams::default())
        .await
        .expect("delete accepted");
    let pending = deleted.left().expect("still there while finalizers remain");
    assert!(pending.metadata.deletion_timestamp.is_some());
    match stream.next().await {
        Some(Ok(WatchEvent::Modified(cm))) => assert!(cm.metadata.deletion_timestamp.is_some()),
        other => panic!("expected MODIFIED with a deletionTimestamp, got {other:?}"),
    }

    let more = json!({ "metadata": { "finalizers": ["example.com/cleanup", "example.com/late"] } });
    let status = api_error(
        cms.patch("held", &PatchParams::default(), &Patch::Merge(&more))
            .await,
    );
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .contains("no new finalizers can be added if the object is being deleted"),
        "{}",
        status.message
    );

    let none = json!({ "metadata": { "finalizers": null } });
    cms.patch("held", &PatchParams::default(), &Patch::Merge(&none))
        .await
        .expect("finalizer removed");
    assert!(gone(&cms, "held").await);
    match stream.next().await {
        Some(Ok(WatchEvent::Deleted(cm))) => assert_eq!(cm.name_any(), "held"),
        other => panic!("expected DELETED, got {other:?}"),
    }
}

#[tokio::test]
async fn dependents_of_a_deleted_cluster_scoped_owner_are_collected() {
    let (_server, client) = start_with_crds().await;
    let owner = instance(&client, "pg").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &owned_by("dependent", &owner, &[]))
        .await
        .expect("created");
    cms.create(
        &PostParams::default(),
        &owned_by("guarded", &owner, &["example.com/keep"]),
    )
    .await
    .expect("created");

    let instances: Api<DbInstance> = Api::all(client);
    instances
        .delete("pg", &DeleteParams::default())
        .await
        .expect("owner deleted");
    eventually("the dependent is collected", || gone(&cms, "dependent")).await;
    eventually("the guarded dependent is being deleted", || async {
        cms.get("guarded")
            .await
            .is_ok_and(|cm| cm.metadata.deletion_timestamp.is_some())
    })
    .await;
}

#[tokio::test]
async fn orphan_propagation_keeps_dependents_without_the_owner_reference() {
    let (_server, client) = start_with_crds().await;
    let owner = instance(&client, "pg").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &owned_by("kept", &owner, &[]))
        .await
        .expect("created");
    let instances: Api<DbInstance> = Api::all(client);
    instances
        .delete("pg", &DeleteParams::orphan())
        .await
        .expect("owner deleted");
    let kept = cms.get("kept").await.expect("dependent stays");
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_contents_and_refuses_new_ones() {
    let (_server, client) = start().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({ "metadata": { "name": "scratch" } })).expect("valid");
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("created");
    let cms: Api<ConfigMap> = Api::namespaced(client, "scratch");
    cms.create(
        &PostParams::default(),
        &config_map(json!({ "metadata": { "name": "blocker", "finalizers": ["example.com/x"] } })),
    )
    .await
    .expect("created");

    let terminating = namespaces
        .delete("scratch", &DeleteParams::default())
        .await
        .expect("delete accepted")
        .left()
        .expect("namespaces terminate first");
    assert_eq!(
        terminating.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    let status = api_error(
        cms.create(
            &PostParams::default(),
            &config_map(json!({ "metadata": { "name": "late" } })),
        )
        .await,
    );
    assert_eq!(status.code, 403);
    assert_eq!(
        status.message,
        "unable to create new content in namespace scratch because it is being terminated"
    );

    eventually("the content is being deleted", || async {
        cms.get("blocker")
            .await
            .is_ok_and(|cm| cm.metadata.deletion_timestamp.is_some())
    })
    .await;
    assert!(namespaces.get_opt("scratch").await.expect("get").is_some());
    let none = json!({ "metadata": { "finalizers": null } });
    cms.patch("blocker", &PatchParams::default(), &Patch::Merge(&none))
        .await
        .expect("finalizer removed");
    eventually("the namespace is gone", || async {
        matches!(namespaces.get_opt("scratch").await, Ok(None))
    })
    .await;
}

#[tokio::test]
async fn recorder_events_read_back_as_core_events_of_the_object() {
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm = cms
        .create(
            &PostParams::default(),
            &config_map(json!({ "metadata": { "name": "subject" } })),
        )
        .await
        .expect("created");
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "db-operator".into(),
            instance: Some("db-operator-0".into()),
        },
    );
    let event = Event {
        type_: EventType::Warning,
        reason: "ConnectFailed".into(),
        note: Some("server unreachable".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    let reference = cm.object_ref(&());
    recorder
        .publish(&event, &reference)
        .await
        .expect("published");
    // The same event again becomes a series: a merge patch of the events.k8s.io object.
    recorder
        .publish(&event, &reference)
        .await
        .expect("published again");

    let events: Api<CoreEvent> = Api::namespaced(client, "default");
    let selected = events
        .list(&ListParams::default().fields(&format!(
            "involvedObject.name=subject,involvedObject.kind=ConfigMap,involvedObject.uid={}",
            cm.uid().unwrap_or_default()
        )))
        .await
        .expect("listed");
    assert_eq!(selected.items.len(), 1);
    let core = &selected.items[0];
    assert_eq!(core.message.as_deref(), Some("server unreachable"));
    assert_eq!(core.reason.as_deref(), Some("ConnectFailed"));
    assert_eq!(core.type_.as_deref(), Some("Warning"));
    assert_eq!(
        core.source.as_ref().and_then(|s| s.component.as_deref()),
        Some("db-operator")
    );
    assert_eq!(core.series.as_ref().and_then(|s| s.count), Some(2));
    let other = events
        .list(&ListParams::default().fields("involvedObject.name=someone-else"))
        .await
        .expect("listed");
    assert!(other.items.is_empty());
}
