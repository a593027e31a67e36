//! kube-rs clients against the emulator: what an operator does (CRUD, status writes, watchers,
//! server-side apply) must behave as on a real cluster.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{api_error, start, start_with, start_with_crds};
use dbo_api::{Database, DatabaseSpec};
use dbo_apiserver::Config;
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use serde_json::json;

/// Guards against a hang; a missed event fails the test instead of blocking it forever.
async fn next<S: Stream + Unpin>(stream: &mut S) -> S::Item {
    tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("an event arrives")
        .expect("the stream stays open")
}

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "data": { "k": "v" },
    }))
    .expect("valid ConfigMap")
}

fn database(name: &str) -> Database {
    Database::new(
        name,
        DatabaseSpec {
            instance: "pg".into(),
            secret_name: format!("{name}-credentials"),
            ..DatabaseSpec::default()
        },
    )
}

#[tokio::test]
async fn secrets_round_trip_with_string_data_folded_into_data() {
    let (_server, client) = start().await;
    let secrets: Api<Secret> = Api::namespaced(client, "default");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "creds" },
        "stringData": { "password": "hunter2" },
    }))
    .expect("valid Secret");
    let created = secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("created");
    assert!(created.string_data.is_none());
    assert_eq!(
        created.data.as_ref().and_then(|d| d.get("password")),
        Some(&ByteString(b"hunter2".to_vec()))
    );
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    let meta = &created.metadata;
    assert!(meta.uid.as_ref().is_some_and(|u| u.len() == 36));
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(meta.namespace.as_deref(), Some("default"));

    let listed = secrets.list(&ListParams::default()).await.expect("listed");
    assert_eq!(listed.items.len(), 1);

    let gone = secrets
        .delete("creds", &DeleteParams::default())
        .await
        .expect("deleted");
    assert!(
        gone.is_right(),
        "an object without finalizers is gone at once"
    );
    let status = api_error(secrets.get("creds").await);
    assert_eq!(status.code, 404);
    assert_eq!(status.message, "secrets \"creds\" not found");
}

#[tokio::test]
async fn stale_updates_conflict_and_duplicate_creates_already_exist() {
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let first = cms
        .create(&PostParams::default(), &config_map("c"))
        .await
        .expect("created");
    let status = api_error(cms.create(&PostParams::default(), &config_map("c")).await);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "AlreadyExists")
    );

    let mut changed = first.clone();
    changed.data = Some(BTreeMap::from([("k".into(), "v2".into())]));
    let updated = cms
        .replace("c", &PostParams::default(), &changed)
        .await
        .expect("replaced");
    assert_ne!(
        updated.metadata.resource_version,
        first.metadata.resource_version
    );

    // `changed` still carries the old resourceVersion.
    let status = api_error(cms.replace("c", &PostParams::default(), &changed).await);
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        status.message,
        "Operation cannot be fulfilled on configmaps \"c\": the object has been modified; \
         please apply your changes to the latest version and try again"
    );
}

#[tokio::test]
async fn objects_in_a_missing_namespace_are_refused() {
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "nowhere");
    let status = api_error(cms.create(&PostParams::default(), &config_map("c")).await);
    assert_eq!(status.code, 404);
    assert_eq!(status.message, "namespaces \"nowhere\" not found");
}

#[tokio::test]
async fn spec_changes_bump_generation_and_status_writes_do_not() {
    let (_server, client) = start_with_crds().await;
    let dbs: Api<Database> = Api::namespaced(client, "default");
    let created = dbs
        .create(&PostParams::default(), &database("db1"))
        .await
        .expect("created");
    assert_eq!(created.metadata.generation, Some(1));

    let status = json!({ "status": { "phase": "Ready", "observedGeneration": 1 } });
    let after_status = dbs
        .patch_status("db1", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status patched");
    assert_eq!(after_status.metadata.generation, Some(1));
    assert_eq!(
        after_status
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref()),
        Some("Ready")
    );

    // Status sent to the main resource is ignored when there is a status subresource.
    let spec = json!({ "spec": { "instance": "other" }, "status": { "phase": "Bogus" } });
    let after_spec = dbs
        .patch("db1", &PatchParams::default(), &Patch::Merge(&spec))
        .await
        .expect("spec patched");
    assert_eq!(after_spec.metadata.generation, Some(2));
    assert_eq!(after_spec.spec.instance, "other");
    assert_eq!(
        after_spec.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Ready")
    );

    // A patch that changes nothing is no write at all.
    let same = dbs
        .patch("db1", &PatchParams::default(), &Patch::Merge(&spec))
        .await
        .expect("no-op patch");
    assert_eq!(
        same.metadata.resource_version,
        after_spec.metadata.resource_version
    );
}

#[tokio::test]
async fn strategic_merge_patches_are_refused_for_custom_resources() {
    let (_server, client) = start_with_crds().await;
    let dbs: Api<Database> = Api::namespaced(client, "default");
    dbs.create(&PostParams::default(), &database("db1"))
        .await
        .expect("created");
    let patch = json!({ "spec": { "instance": "x" } });
    let status = api_error(
        dbs.patch("db1", &PatchParams::default(), &Patch::Strategic(&patch))
            .await,
    );
    assert_eq!(status.code, 415);
}

#[tokio::test]
async fn invalid_custom_resources_name_the_field() {
    let (_server, client) = start_with_crds().await;
    let dbs: Api<DynamicObject> =
        Api::namespaced_with(client, "default", &ApiResource::erase::<Database>(&()));
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kci.rocks/v1alpha1",
        "kind": "Database",
        "metadata": { "name": "broken" },
        "spec": { "secretName": "s" },
    }))
    .expect("valid object");
    let status = api_error(dbs.create(&PostParams::default(), &obj).await);
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .starts_with("Database.kci.rocks \"broken\" is invalid: ")
            && status.message.contains("spec.instance: Required value"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn the_watcher_sees_creates_modifications_and_deletions() {
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    cms.create(&PostParams::default(), &config_map("before"))
        .await
        .expect("created");
    let mut events = watcher(cms.clone(), watcher::Config::default()).boxed();
    let mut initial = Vec::new();
    loop {
        match next(&mut events).await.expect("no watch error") {
            watcher::Event::Init => {}
            watcher::Event::InitApply(cm) => initial.push(cm.metadata.name.unwrap_or_default()),
            watcher::Event::InitDone => break,
            other => panic!("unexpected event during the initial list: {other:?}"),
        }
    }
    assert_eq!(initial, ["before"]);

    cms.create(&PostParams::default(), &config_map("new"))
        .await
        .expect("created");
    let patch = json!({ "data": { "k": "changed" } });
    cms.patch("new", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patched");
    cms.delete("new", &DeleteParams::default())
        .await
        .expect("deleted");

    let watcher::Event::Apply(added) = next(&mut events).await.expect("event") else {
        panic!("expected the create");
    };
    assert_eq!(added.data.unwrap_or_default()["k"], "v");
    let watcher::Event::Apply(modified) = next(&mut events).await.expect("event") else {
        panic!("expected the patch");
    };
    assert_eq!(modified.data.unwrap_or_default()["k"], "changed");
    let watcher::Event::Delete(deleted) = next(&mut events).await.expect("event") else {
        panic!("expected the delete");
    };
    assert_eq!(deleted.metadata.name.as_deref(), Some("new"));
}

#[tokio::test]
async fn a_watch_resumes_after_the_resource_version_it_stopped_at() {
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    cms.create(&PostParams::default(), &config_map("old"))
        .await
        .expect("created");
    let rv = cms
        .list(&ListParams::default())
        .await
        .expect("listed")
        .metadata
        .resource_version
        .expect("lists carry a resourceVersion");
    cms.create(&PostParams::default(), &config_map("a"))
        .await
        .expect("created");
    cms.create(&PostParams::default(), &config_map("b"))
        .await
        .expect("created");

    let mut stream = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watching")
        .boxed();
    let mut names = Vec::new();
    for _ in 0..2 {
        match next(&mut stream).await.expect("event") {
            WatchEvent::Added(cm) => names.push(cm.metadata.name.unwrap_or_default()),
            other => panic!("expected a replayed ADDED, got {other:?}"),
        }
    }
    assert_eq!(
        names,
        ["a", "b"],
        "only what happened after the resourceVersion"
    );
}

#[tokio::test]
async fn a_watch_from_a_compacted_resource_version_expires_and_the_watcher_relists() {
    let (_server, client) = start_with(Config {
        watch_history: 5,
        ..Config::default()
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let rv = cms
        .list(&ListParams::default())
        .await
        .expect("listed")
        .metadata
        .resource_version
        .expect("rv");
    for i in 0..10 {
        cms.create(&PostParams::default(), &config_map(&format!("c{i}")))
            .await
            .expect("created");
    }
    let mut stream = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watching")
        .boxed();
    match next(&mut stream).await.expect("event") {
        WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            assert!(status.message.starts_with("too old resource version"));
        }
        other => panic!("expected 410 Expired, got {other:?}"),
    }

    // kube's watcher starts over with a list and so still sees everything.
    let seen: Vec<ConfigMap> = watcher(cms, watcher::Config::default())
        .take_while(|e| futures::future::ready(!matches!(e, Ok(watcher::Event::InitDone))))
        .try_filter_map(|e| async move {
            Ok(match e {
                watcher::Event::InitApply(cm) => Some(cm),
                _ => None,
            })
        })
        .try_collect()
        .await
        .expect("initial list");
    assert_eq!(seen.len(), 10);
}

#[tokio::test]
async fn lists_page_by_500_and_the_watcher_sees_every_object() {
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..1201 {
        cms.create(&PostParams::default(), &config_map(&format!("cm-{i:04}")))
            .await
            .expect("created");
    }
    let first = cms
        .list(&ListParams::default().limit(500))
        .await
        .expect("page 1");
    assert_eq!(first.items.len(), 500);
    let token = first.metadata.continue_.clone().expect("more pages");
    let second = cms
        .list(&ListParams::default().limit(500).continue_token(&token))
        .await
        .expect("page 2");
    assert_eq!(second.items.len(), 500);
    assert_eq!(second.items[0].metadata.name.as_deref(), Some("cm-0500"));
    let token = second.metadata.continue_.clone().expect("more pages");
    let third = cms
        .list(&ListParams::default().limit(500).continue_token(&token))
        .await
        .expect("page 3");
    assert_eq!(third.items.len(), 201);
    assert!(
        third
            .metadata
            .continue_
            .as_deref()
            .is_none_or(str::is_empty)
    );

    let mut events = watcher(cms, watcher::Config::default()).boxed();
    let mut count = 0;
    loop {
        match next(&mut events).await.expect("no watch error") {
            watcher::Event::InitApply(_) => count += 1,
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(count, 1201);
}

#[tokio::test]
async fn label_selectors_filter_lists_and_an_object_leaving_the_selection_is_deleted() {
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut labelled = config_map("web");
    labelled.metadata.labels = Some(BTreeMap::from([("app".into(), "web".into())]));
    cms.create(&PostParams::default(), &labelled)
        .await
        .expect("created");
    cms.create(&PostParams::default(), &config_map("plain"))
        .await
        .expect("created");

    let selected = cms
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("listed");
    let names: Vec<_> = selected
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    assert_eq!(names, ["web"]);

    let mut stream = cms
        .watch(&WatchParams::default().labels("app=web"), "0")
        .await
        .expect("watching")
        .boxed();
    assert!(matches!(
        next(&mut stream).await.expect("event"),
        WatchEvent::Added(_)
    ));
    let unlabel = json!({ "metadata": { "labels": { "app": null } } });
    cms.patch("web", &PatchParams::default(), &Patch::Merge(&unlabel))
        .await
        .expect("patched");
    match next(&mut stream).await.expect("event") {
        WatchEvent::Deleted(cm) => assert_eq!(cm.metadata.name.as_deref(), Some("web")),
        other => panic!("expected DELETED for an object leaving the selection, got {other:?}"),
    }
}

#[tokio::test]
async fn server_side_apply_creates_updates_and_removes_dropped_fields() {
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let pp = PatchParams::apply("tester");
    let v1 = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "applied", "labels": { "a": "1", "b": "2" } },
        "data": { "x": "1", "y": "2" },
    });
    let created = cms
        .patch("applied", &pp, &Patch::Apply(&v1))
        .await
        .expect("created");
    assert_eq!(created.data.clone().unwrap_or_default()["x"], "1");
    let managers: Vec<_> = created
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|m| (m.manager.clone(), m.operation.clone()))
        .collect();
    assert_eq!(managers, [(Some("tester".into()), Some("Apply".into()))]);

    let v2 = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "applied", "labels": { "a": "1" } },
        "data": { "x": "10" },
    });
    let updated = cms
        .patch("applied", &pp, &Patch::Apply(&v2))
        .await
        .expect("updated");
    assert_eq!(
        updated.data.unwrap_or_default(),
        BTreeMap::from([("x".to_owned(), "10".to_owned())])
    );
    assert_eq!(
        updated.metadata.labels.unwrap_or_default(),
        BTreeMap::from([("a".to_owned(), "1".to_owned())])
    );

    let status = api_error(
        cms.patch("applied", &PatchParams::default(), &Patch::Apply(&v2))
            .await,
    );
    assert_eq!(
        status.code, 400,
        "apply needs a field manager: {}",
        status.message
    );
}

#[tokio::test]
async fn apply_conflicts_between_managers_unless_forced() {
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let mine = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "shared" }, "data": { "x": "mine" },
    });
    let theirs = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "shared" }, "data": { "x": "theirs" },
    });
    cms.patch("shared", &PatchParams::apply("a"), &Patch::Apply(&mine))
        .await
        .expect("a applies");
    let status = api_error(
        cms.patch("shared", &PatchParams::apply("b"), &Patch::Apply(&theirs))
            .await,
    );
    assert_eq!(status.code, 409);
    assert!(
        status.message.contains("conflict with \"a\"") && status.message.contains(".data.x"),
        "{}",
        status.message
    );
    let forced = cms
        .patch(
            "shared",
            &PatchParams::apply("b").force(),
            &Patch::Apply(&theirs),
        )
        .await
        .expect("b forces");
    assert_eq!(forced.data.unwrap_or_default()["x"], "theirs");
}

#[tokio::test]
async fn generate_name_gives_a_fresh_name() {
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut cm = config_map("");
    cm.metadata.name = None;
    cm.metadata.generate_name = Some("job-".into());
    let a = cms
        .create(&PostParams::default(), &cm)
        .await
        .expect("created");
    let b = cms
        .create(&PostParams::default(), &cm)
        .await
        .expect("created");
    let (a, b) = (
        a.metadata.name.unwrap_or_default(),
        b.metadata.name.unwrap_or_default(),
    );
    assert!(a.starts_with("job-") && a.len() == 9, "{a}");
    assert_ne!(a, b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_watchers_each_see_a_thousand_creates() {
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut watchers = Vec::new();
    for _ in 0..10 {
        let stream = cms
            .watch(&WatchParams::default(), "0")
            .await
            .expect("watching");
        watchers.push(tokio::spawn(async move {
            let mut stream = stream.boxed();
            let mut added = 0;
            while added < 1000 {
                match next(&mut stream).await.expect("event") {
                    WatchEvent::Added(_) => added += 1,
                    WatchEvent::Bookmark(_) => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
            added
        }));
    }
    for i in 0..1000 {
        cms.create(&PostParams::default(), &config_map(&format!("load-{i}")))
            .await
            .expect("created");
    }
    for w in watchers {
        assert_eq!(w.await.expect("watcher task"), 1000);
    }
}

#[tokio::test]
async fn streaming_lists_end_their_initial_events_with_a_bookmark() {
    let (_server, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    for name in ["a", "b"] {
        cms.create(&PostParams::default(), &config_map(name))
            .await
            .expect("created");
    }
    let mut events = watcher(cms, watcher::Config::default().streaming_lists()).boxed();
    let mut initial = Vec::new();
    loop {
        match next(&mut events).await.expect("no watch error") {
            watcher::Event::Init => {}
            watcher::Event::InitApply(cm) => initial.push(cm.metadata.name.unwrap_or_default()),
            watcher::Event::InitDone => break,
            other => panic!("unexpected event during the initial events: {other:?}"),
        }
    }
    assert_eq!(initial, ["a", "b"]);
}

#[tokio::test]
async fn jobs_are_completed_through_their_status_and_keep_their_template() {
    use k8s_openapi::api::batch::v1::Job;
    let (_server, client) = start().await;
    let jobs: Api<Job> = Api::namespaced(client, "default");
    let job: Job = serde_json::from_value(json!({
        "metadata": { "name": "migrate" },
        "spec": { "template": { "spec": {
            "restartPolicy": "Never",
            "containers": [{ "name": "c", "image": "busybox" }],
        } } },
        "status": { "succeeded": 1 },
    }))
    .expect("valid Job");
    let created = jobs
        .create(&PostParams::default(), &job)
        .await
        .expect("created");
    assert!(
        created.status.is_none_or(|s| s.succeeded.is_none()),
        "no job controller here"
    );

    let done = json!({ "status": {
        "succeeded": 1,
        "conditions": [{ "type": "Complete", "status": "True" }],
    } });
    let completed = jobs
        .patch_status("migrate", &PatchParams::default(), &Patch::Merge(&done))
        .await
        .expect("status patched");
    assert_eq!(completed.status.and_then(|s| s.succeeded), Some(1));

    let retemplate = json!({ "spec": { "template": { "spec": {
        "containers": [{ "name": "c", "image": "alpine" }],
    } } } });
    let status = api_error(
        jobs.patch(
            "migrate",
            &PatchParams::default(),
            &Patch::Strategic(&retemplate),
        )
        .await,
    );
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains("spec.template") && status.message.contains("field is immutable")
    );
}
