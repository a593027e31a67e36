//! The fault switch and request counters tests of the operator rely on.

mod common;

use std::time::Duration;

use common::{api_error, start};
use dbo_apiserver::FaultRule;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchParams};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn secret(name: &str) -> Secret {
    serde_json::from_value(json!({ "metadata": { "name": name } })).expect("valid Secret")
}

/// The raw response to a POST (head and body), to see what kube-rs hides.
async fn post(url: &str, path: &str, body: &str) -> String {
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
}

#[tokio::test]
async fn injected_errors_hit_only_the_chosen_verbs_and_resources() {
    let (server, client) = start().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    server.faults().set(FaultRule {
        verbs: vec!["create".into()],
        resources: vec!["secrets".into()],
        error_rate: 1.0,
        status: 500,
        ..FaultRule::default()
    });
    let status = api_error(secrets.create(&PostParams::default(), &secret("s")).await);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (500, "InternalError")
    );
    secrets
        .list(&ListParams::default())
        .await
        .expect("lists still work");
    let cm: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "c" } })).expect("valid");
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("other resources still work");

    server.faults().clear();
    secrets
        .create(&PostParams::default(), &secret("s"))
        .await
        .expect("healthy again");
}

// kube-rs retries 429 by itself (honouring Retry-After), so this looks at the raw response.
#[tokio::test]
async fn throttling_says_when_to_retry() {
    let (server, _client) = start().await;
    server.faults().set(FaultRule {
        verbs: vec!["create".into()],
        error_rate: 1.0,
        status: 429,
        ..FaultRule::default()
    });
    let response = post(
        &server.url(),
        "/api/v1/namespaces/default/secrets",
        r#"{"metadata":{"name":"raw"}}"#,
    )
    .await;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_default();
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 429"), "{head}");
    assert!(head.contains("\r\nretry-after: 1"), "{head}");
    let status: serde_json::Value = serde_json::from_str(body).expect("a Status body");
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(status["details"]["retryAfterSeconds"], 1);
}

#[tokio::test]
async fn dropped_watches_end_their_stream() {
    let (server, client) = start().await;
    server.faults().set(FaultRule {
        verbs: vec!["watch".into()],
        drop_watches_after: Some(Duration::from_millis(100)),
        ..FaultRule::default()
    });
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut stream = cms
        .watch(&WatchParams::default(), "0")
        .await
        .expect("watching")
        .boxed();
    let end = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("the server ends the stream");
    assert!(end.is_none(), "no events, just the end: {end:?}");
}

#[tokio::test]
async fn stats_count_requests_by_verb_and_writes_by_resource() {
    let (server, client) = start().await;
    let secrets: Api<Secret> = Api::namespaced(client, "default");
    server.reset_stats();
    secrets
        .create(&PostParams::default(), &secret("a"))
        .await
        .expect("created");
    secrets
        .create(&PostParams::default(), &secret("b"))
        .await
        .expect("created");
    secrets.get("a").await.expect("got");
    secrets.list(&ListParams::default()).await.expect("listed");
    let label = json!({ "metadata": { "labels": { "x": "1" } } });
    secrets
        .patch("a", &PatchParams::default(), &Patch::Merge(&label))
        .await
        .expect("patched");

    let stats = server.stats();
    assert_eq!(stats.requests, 5);
    assert_eq!(stats.writes, 3);
    assert_eq!(stats.by_verb.get("create"), Some(&2));
    assert_eq!(stats.by_verb.get("patch"), Some(&1));
    assert_eq!(stats.by_verb.get("get"), Some(&1));
    assert_eq!(stats.by_verb.get("list"), Some(&1));
    assert_eq!(stats.writes_by_resource.get("secrets"), Some(&3));

    server.reset_stats();
    assert_eq!(server.stats(), dbo_apiserver::Stats::default());
}
