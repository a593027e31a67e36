//! The Elasticsearch engine's Jobs against a stand-in cluster: manifests are rendered through the
//! real WebAssembly plugin, each Job's container runs in the pod runner with exactly its env and
//! files, and `curl` is a stand-in that records every request (argv, body, config file) and
//! answers canned JSON per method and path. No Elasticsearch server can run here; what is
//! checked is the contract: which requests, in which order, with which names and bodies, and
//! what the scripts do with the answers.

use std::collections::BTreeMap;
use std::fs;

use anyhow::{Context, Result, ensure};
use dbo_e2e::checks::assert_no_secret_in_argv;
use dbo_e2e::pod_runner::{PodOutcome, PodRunner};
use dbo_e2e::render::{Cluster, LoadedEngine, Restore, cron_job, job, load_engine, restore_job};
use dbo_e2e::standin::{Call, StandIn, StandIns};
use dbo_render::{PasswordSource, Rendered};
use serde_json::{Value, json};

const NAMESPACE: &str = "app";
const ADMIN_PASSWORD: &str = "Adm1n-pw-never-in-argv";
const URL: &str = "http://127.0.0.1:9200";
/// The index prefix of Database `app/orders`.
const PREFIX: &str = "app_orders";
const REPO: &str = "dbo-app_orders";

struct TestPasswords;

impl PasswordSource for TestPasswords {
    fn generate(&mut self, length: usize) -> String {
        "Pw0rdAppUser".chars().cycle().take(length).collect()
    }
}

/// One canned answer: `METHOD /path` (`*` matches anything), HTTP status, body.
struct Route {
    pattern: String,
    status: u16,
    body: Value,
}

fn route(pattern: &str, status: u16, body: Value) -> Route {
    Route {
        pattern: pattern.to_owned(),
        status,
        body,
    }
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A stand-in `curl` that keeps each request's body and config file next to its call record and
/// answers from `routes` the way the scripts call curl (`--write-out '\n%{http_code}'`).
fn curl(tools_dir: &std::path::Path, routes: &[Route]) -> Result<StandIn> {
    let data = tools_dir.join("data");
    let mut cases = String::new();
    for (i, r) in routes.iter().enumerate() {
        let file = data.join(format!("route-{i}.json"));
        fs::write(&file, serde_json::to_vec(&r.body)?)?;
        let pattern: Vec<String> = r.pattern.split('*').map(sh_quote).collect();
        cases.push_str(&format!(
            "{}) cat {}; printf '\\n%s' {} ;;\n",
            pattern.join("*"),
            sh_quote(&file.display().to_string()),
            r.status
        ));
    }
    Ok(StandIn::new("curl").script(format!(
        r#"method=GET; url=; body=; config=
while [ $# -gt 0 ]; do
  case $1 in
    --request) method=$2; shift ;;
    --data-binary) body=${{2#@}}; shift ;;
    --config) config=$2; shift ;;
    --connect-timeout|--header|--write-out) shift ;;
    -*) ;;
    *) url=$1 ;;
  esac
  shift
done
[ -z "$body" ] || cp "$body" "$call/body"
[ -z "$config" ] || cp "$config" "$call/config"
path=/${{url#*://*/}}
case "$method $path" in
{cases}*) printf '{{"error":{{"reason":"no stand-in route for %s %s"}}}}\n599' "$method" "$path" ;;
esac
exit 0"#
    )))
}

/// What a recorded curl call sent, besides its argv.
struct Request {
    call: Call,
    method: String,
    path: String,
    body: Option<Value>,
    config: Option<String>,
}

fn requests(tools: &StandIns) -> Result<Vec<Request>> {
    let mut out = Vec::new();
    for call in tools.calls_of("curl")? {
        let dir = call.dir.clone();
        let arg_after = |flag: &str| {
            call.args
                .iter()
                .position(|a| a == flag)
                .and_then(|i| call.args.get(i + 1))
                .cloned()
        };
        let method = arg_after("--request").unwrap_or_else(|| "GET".into());
        let url = call.args.last().cloned().unwrap_or_default();
        let path = url.strip_prefix(URL).unwrap_or(&url).to_owned();
        let body = match fs::read(dir.join("body")) {
            Ok(b) => Some(serde_json::from_slice(&b).with_context(|| format!("body of {url}"))?),
            Err(_) => None,
        };
        let config = fs::read_to_string(dir.join("config")).ok();
        out.push(Request {
            call,
            method,
            path,
            body,
            config,
        });
    }
    Ok(out)
}

fn lines(requests: &[Request]) -> Vec<String> {
    requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

struct World {
    engine: LoadedEngine,
}

impl World {
    fn new() -> Result<World> {
        Ok(World {
            engine: load_engine("elasticsearch", dbo_plugin_artifacts::ELASTICSEARCH)?,
        })
    }

    /// Renders `yaml` into an empty cluster and a runner that knows its Secrets and ConfigMaps
    /// and uses `tools`.
    fn render(&self, yaml: &str, tools: &StandIns) -> Result<(Rendered, PodRunner)> {
        let mut cluster = Cluster::default();
        let rendered = cluster.apply(&self.engine, yaml, &mut TestPasswords)?;
        let runner = cluster.runner_with(&self.engine, tools)?;
        Ok((rendered, runner))
    }
}

fn manifest_yaml(schema: &BTreeMap<&str, Value>, restores: &[(&str, &str)]) -> String {
    let mut yaml = format!(
        r#"
apiVersion: v1
kind: Secret
metadata:
  name: es-admin
  namespace: db-operator
stringData:
  username: elastic
  password: "{ADMIN_PASSWORD}"
---
apiVersion: kci.rocks/v1alpha1
kind: DbInstance
metadata:
  name: search
spec:
  engine: elasticsearch
  adminSecretRef:
    namespace: db-operator
    name: es-admin
  generic:
    host: 127.0.0.1
    port: 9200
  backup:
    s3:
      bucket: search-snapshots
      prefix: /prod/eu/
      auth:
        ambient: {{}}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: orders-schema
  namespace: {NAMESPACE}
data:
"#
    );
    for (key, body) in schema {
        yaml.push_str(&format!("  {key}: {}\n", sh_quote_yaml(&body.to_string())));
    }
    yaml.push_str(&format!(
        r#"---
apiVersion: kci.rocks/v1alpha1
kind: Database
metadata:
  name: orders
  namespace: {NAMESPACE}
spec:
  instance: search
  secretName: orders-es
  backup:
    enable: true
    cron: "0 3 * * *"
    containerName: snapshotter
  commission:
    schema:
      configMapRef:
        name: orders-schema
      version: 2
"#
    ));
    for &(name, snapshot) in restores {
        let restore = Restore {
            name,
            database: "orders",
            snapshot: snapshot.to_owned(),
        };
        yaml.push_str(&restore.yaml(NAMESPACE));
    }
    yaml
}

/// A YAML single-quoted scalar.
fn sh_quote_yaml(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn schema() -> BTreeMap<&'static str, Value> {
    BTreeMap::from([
        (
            "events.index-template.json",
            json!({"index_patterns": ["app_orders_events-*"], "composed_of": ["base", "logs@settings"],
                   "priority": 200,
                   "template": {"mappings": {"properties": {"sku": {"type": "keyword"}}},
                                "aliases": {"app_orders_events": {}}}}),
        ),
        (
            "base.component-template.json",
            json!({"template": {"settings": {"number_of_shards": 1}}}),
        ),
        (
            "archive.index-template.json",
            json!({"index_patterns": "app_orders_archive"}),
        ),
    ])
}

fn container(outcome: &PodOutcome) -> &dbo_e2e::pod_runner::ContainerOutcome {
    &outcome.containers[0]
}

/// No argv of any call carries a password.
fn no_secret_in_argv(requests: &[Request]) -> Result<()> {
    assert_no_secret_in_argv(
        requests.iter().map(|r| &r.call),
        &[ADMIN_PASSWORD, "Pw0rdAppUser"],
    )
}

#[test]
fn commissioning_creates_role_and_user_then_applies_the_schema_in_order() -> Result<()> {
    let world = World::new()?;
    let mut tools = StandIns::new()?;
    let ok = json!({"acknowledged": true});
    tools.add(curl(
        tools.dir(),
        &[
            route(
                "PUT /_security/role/dbo-app_orders",
                200,
                json!({"role": {"created": true}}),
            ),
            route(
                "PUT /_security/user/app_orders",
                200,
                json!({"created": true}),
            ),
            route("PUT /_component_template/*", 200, ok.clone()),
            route("PUT /_index_template/*", 200, ok.clone()),
            route("PUT /*/_mapping?*", 200, ok),
        ],
    )?);
    let (rendered, runner) = world.render(&manifest_yaml(&schema(), &[]), &tools)?;
    let outcome = runner.run_job(job(&rendered, "commission", "orders")?)?;
    ensure!(outcome.succeeded(), "commissioning failed:\n{outcome}");

    let requests = requests(&tools)?;
    assert_eq!(
        lines(&requests),
        [
            "PUT /_security/role/dbo-app_orders",
            "PUT /_security/user/app_orders",
            "PUT /_component_template/app_orders_base",
            "PUT /_index_template/app_orders_archive",
            "PUT /_index_template/app_orders_events",
            "PUT /app_orders_events-*/_mapping?allow_no_indices=true&ignore_unavailable=true",
        ]
    );
    let first = &requests[0].call;
    let config_file =
        first.args[first.args.iter().position(|a| a == "--config").unwrap() + 1].clone();
    assert_eq!(
        first.args,
        [
            "--silent",
            "--show-error",
            "--globoff",
            "--connect-timeout",
            "30",
            "--config",
            config_file.as_str(),
            "--request",
            "PUT",
            "--header",
            "Content-Type: application/json",
            "--data-binary",
            &format!("@{}/role.json", config_file.trim_end_matches("/curl.conf")),
            "--write-out",
            "\\n%{http_code}",
            &format!("{URL}/_security/role/dbo-app_orders"),
        ]
    );
    assert_eq!(
        requests[0].config.as_deref(),
        Some(format!("user = \"elastic:{ADMIN_PASSWORD}\"\n").as_str()),
        "the admin authenticates through the private config file"
    );
    no_secret_in_argv(&requests)?;

    let role = requests[0].body.as_ref().context("role body")?;
    assert_eq!(
        role["indices"],
        json!([{"names": ["app_orders", "app_orders_*"], "privileges": ["all"]}])
    );
    assert_eq!(
        role["cluster"],
        json!([
            "monitor_snapshot",
            "create_snapshot",
            "cluster:admin/repository/put",
            "cluster:admin/snapshot/restore"
        ])
    );
    let user = requests[1].body.as_ref().context("user body")?;
    assert_eq!(user["roles"], json!(["dbo-app_orders"]));
    assert_eq!(user["password"].as_str().map(str::len), Some(32));
    let events = requests[4].body.as_ref().context("template body")?;
    assert_eq!(
        events["composed_of"],
        json!(["app_orders_base", "logs@settings"]),
        "the ConfigMap's own component templates are named with the prefix, built-ins kept"
    );
    assert_eq!(events["_meta"]["schema_version"], json!(2));
    assert_eq!(
        requests[5].body,
        Some(json!({"properties": {"sku": {"type": "keyword"}}})),
        "existing indices get the template's mappings"
    );
    Ok(())
}

#[test]
fn a_template_reaching_outside_the_prefix_stops_commissioning_before_any_request() -> Result<()> {
    let world = World::new()?;
    let mut tools = StandIns::new()?;
    tools.add(curl(tools.dir(), &[])?);
    let mut bad = schema();
    bad.insert(
        "leak.index-template.json",
        json!({"index_patterns": ["app_orders_x-*", "app_orders2-*"]}),
    );
    let (rendered, runner) = world.render(&manifest_yaml(&bad, &[]), &tools)?;
    let outcome = runner.run_job(job(&rendered, "commission", "orders")?)?;
    let c = container(&outcome);
    assert_eq!(c.exit_code, 1, "{outcome}");
    assert!(
        c.stderr
            .contains("schema ConfigMap key 'leak.index-template.json'")
            && c.stderr.contains("app_orders2-*"),
        "the message names the key and the pattern:\n{}",
        c.stderr
    );
    assert!(requests(&tools)?.is_empty(), "nothing was applied");
    Ok(())
}

fn snapshot_answer(name: &str, state: &str, indices: &[&str]) -> Value {
    json!({"snapshot": {"snapshot": name, "state": state, "indices": indices,
        "failures": if state == "SUCCESS" { json!([]) } else {
            json!([{"index": "app_orders_events-1", "shard_id": 0, "reason": "node left"}]) },
        "shards": {"total": 1, "failed": if state == "SUCCESS" { 0 } else { 1 }, "successful": 1}}})
}

#[test]
fn backup_registers_the_repository_then_takes_a_dated_snapshot_in_the_named_container() -> Result<()>
{
    let world = World::new()?;
    let mut tools = StandIns::new()?;
    tools.add(curl(
        tools.dir(),
        &[
            route(
                "PUT /_snapshot/dbo-app_orders",
                200,
                json!({"acknowledged": true}),
            ),
            route(
                "PUT /_snapshot/dbo-app_orders/app_orders-*?wait_for_completion=true",
                200,
                snapshot_answer("x", "SUCCESS", &["app_orders_events-1", "app_orders"]),
            ),
        ],
    )?);
    let (rendered, runner) = world.render(&manifest_yaml(&schema(), &[]), &tools)?;
    let outcome = runner.run_cron_job(cron_job(&rendered, NAMESPACE, "orders")?)?;
    ensure!(outcome.succeeded(), "backup failed:\n{outcome}");
    assert_eq!(container(&outcome).name, "snapshotter");

    let requests = requests(&tools)?;
    assert_eq!(requests.len(), 2, "{:?}", lines(&requests));
    assert_eq!(requests[0].path, format!("/_snapshot/{REPO}"));
    assert_eq!(
        requests[0].body,
        Some(
            json!({"type": "s3", "settings": {"bucket": "search-snapshots",
            "base_path": "prod/eu/app_orders", "readonly": false, "client": "default"}})
        )
    );
    let snapshot = requests[1]
        .path
        .strip_prefix(&format!("/_snapshot/{REPO}/"))
        .and_then(|p| p.strip_suffix("?wait_for_completion=true"))
        .context("snapshot path")?
        .to_owned();
    let stamp = snapshot
        .strip_prefix("app_orders-")
        .context("snapshot name")?;
    ensure!(
        stamp.len() == 16
            && stamp.as_bytes()[8] == b't'
            && stamp.ends_with('z')
            && stamp
                .chars()
                .all(|c| c.is_ascii_digit() || c == 't' || c == 'z'),
        "{snapshot} is not <prefix>-<yyyymmddthhmmssz>"
    );
    assert_eq!(
        requests[1].body,
        Some(
            json!({"indices": "app_orders,app_orders_*", "ignore_unavailable": true,
            "include_global_state": false,
            "metadata": {"taken_by": "db-operator", "backup_name": PREFIX}})
        )
    );
    assert_eq!(
        requests[1].config.as_deref(),
        Some(format!("user = \"app_orders:{}\"\n", TestPasswords.generate(32)).as_str()),
        "backups run as the Database's user"
    );
    no_secret_in_argv(&requests)?;
    let report: Value = serde_json::from_str(container(&outcome).termination_message.trim())
        .context("termination message is JSON")?;
    assert_eq!(report["key"], json!(snapshot));
    assert_eq!(report["indices"], json!(2));
    Ok(())
}

#[test]
fn a_backup_fails_when_the_snapshot_is_not_a_complete_one() -> Result<()> {
    let world = World::new()?;
    for (answer, expected) in [
        (
            snapshot_answer("x", "PARTIAL", &["app_orders_events-1"]),
            "ended in state 'PARTIAL' (app_orders_events-1[0]: node left)",
        ),
        (
            snapshot_answer("x", "SUCCESS", &[]),
            "no index matches app_orders,app_orders_*",
        ),
    ] {
        let mut tools = StandIns::new()?;
        tools.add(curl(
            tools.dir(),
            &[
                route(
                    "PUT /_snapshot/dbo-app_orders",
                    200,
                    json!({"acknowledged": true}),
                ),
                route("PUT /_snapshot/dbo-app_orders/*", 200, answer),
            ],
        )?);
        let (rendered, runner) = world.render(&manifest_yaml(&schema(), &[]), &tools)?;
        let outcome = runner.run_cron_job(&rendered.cron_jobs[0])?;
        let c = container(&outcome);
        assert_eq!(c.exit_code, 1, "{outcome}");
        assert!(
            c.stderr.contains(expected),
            "{expected:?} not in:\n{}",
            c.stderr
        );
        assert!(
            !c.termination_message.contains("\"key\""),
            "no success report: {}",
            c.termination_message
        );
    }

    // A repository the cluster cannot write to stops the backup before the snapshot.
    let mut tools = StandIns::new()?;
    tools.add(curl(
        tools.dir(),
        &[route(
            "PUT /_snapshot/dbo-app_orders",
            500,
            json!({"error": {"root_cause": [{"reason": "[dbo-app_orders] path [prod/eu/app_orders] is not accessible on master node"}]}}),
        )],
    )?);
    let (rendered, runner) = world.render(&manifest_yaml(&schema(), &[]), &tools)?;
    let outcome = runner.run_cron_job(&rendered.cron_jobs[0])?;
    let c = container(&outcome);
    assert_eq!(c.exit_code, 1, "{outcome}");
    assert!(
        c.stderr
            .contains("HTTP 500: [dbo-app_orders] path [prod/eu/app_orders] is not accessible"),
        "{}",
        c.stderr
    );
    assert_eq!(
        requests(&tools)?.len(),
        1,
        "no snapshot after a failed registration"
    );
    Ok(())
}

fn listing() -> Value {
    json!({"snapshots": [
        {"snapshot": "app_orders-20240501t030000z", "state": "SUCCESS", "indices": ["app_orders_events-1"], "start_time_in_millis": 1714532400000_u64},
        {"snapshot": "app_orders-20240502t030000z", "state": "SUCCESS", "indices": ["app_orders_events-1", "app_orders_events-2"], "start_time_in_millis": 1714618800000_u64},
        {"snapshot": "app_orders-20240503t030000z", "state": "FAILED", "indices": ["app_orders_events-1"], "start_time_in_millis": 1714705200000_u64},
        {"snapshot": "app_orders-20240504t030000z", "state": "SUCCESS", "indices": [], "start_time_in_millis": 1714791600000_u64},
    ]})
}

#[test]
fn restores_pick_the_newest_complete_snapshot_close_what_it_holds_and_restore() -> Result<()> {
    let world = World::new()?;
    for (name, snapshot, expected) in [
        ("latest", "latest: true", "app_orders-20240502t030000z"),
        (
            "before",
            "pointInTime: \"2024-05-02T02:59:59Z\"",
            "app_orders-20240501t030000z",
        ),
    ] {
        let mut tools = StandIns::new()?;
        tools.add(curl(
            tools.dir(),
            &[
                route("GET /_snapshot/dbo-app_orders", 200, json!({REPO: {"type": "s3"}})),
                route("GET /_snapshot/dbo-app_orders/app_orders-*?ignore_unavailable=true", 200, listing()),
                route(
                    &format!("GET /_snapshot/dbo-app_orders/{expected}"),
                    200,
                    json!({"snapshots": [{"snapshot": expected, "state": "SUCCESS",
                        "indices": ["app_orders_events-1", "app_orders_events-2", ".kibana_1"]}]}),
                ),
                route(
                    "POST /*/_close?*",
                    200,
                    json!({"acknowledged": true, "indices": {"app_orders_events-1": {"closed": true}}}),
                ),
                route(
                    &format!("POST /_snapshot/dbo-app_orders/{expected}/_restore?wait_for_completion=true"),
                    200,
                    json!({"snapshot": {"snapshot": expected, "indices": ["app_orders_events-1", "app_orders_events-2"],
                        "shards": {"total": 2, "failed": 0, "successful": 2}}}),
                ),
            ],
        )?);
        let (rendered, runner) =
            world.render(&manifest_yaml(&schema(), &[(name, snapshot)]), &tools)?;
        let outcome = runner.run_job(restore_job(&rendered, name)?)?;
        ensure!(outcome.succeeded(), "restore {name} failed:\n{outcome}");
        let requests = requests(&tools)?;
        assert_eq!(
            lines(&requests),
            [
                format!("GET /_snapshot/{REPO}"),
                format!("GET /_snapshot/{REPO}/app_orders-*?ignore_unavailable=true"),
                format!("GET /_snapshot/{REPO}/{expected}"),
                "POST /app_orders_events-1,app_orders_events-2/_close?ignore_unavailable=true&allow_no_indices=true".to_string(),
                format!("POST /_snapshot/{REPO}/{expected}/_restore?wait_for_completion=true"),
            ],
            "{name}: only the Database's indices of the snapshot are closed"
        );
        assert_eq!(
            requests[4].body,
            Some(
                json!({"indices": "app_orders,app_orders_*", "ignore_unavailable": true,
                "include_global_state": false, "include_aliases": true})
            )
        );
        no_secret_in_argv(&requests)?;
        assert!(
            container(&outcome).termination_message.contains(expected),
            "{}",
            container(&outcome).termination_message
        );
    }
    Ok(())
}

#[test]
fn another_databases_snapshot_is_read_from_its_repository_and_renamed() -> Result<()> {
    let world = World::new()?;
    let mut tools = StandIns::new()?;
    let source = "app_invoices-20240501t030000z";
    tools.add(curl(
        tools.dir(),
        &[
            route("GET /_snapshot/dbo-app_invoices", 404, json!({"error": {"reason": "missing"}})),
            route("PUT /_snapshot/dbo-app_invoices", 200, json!({"acknowledged": true})),
            route(
                &format!("GET /_snapshot/dbo-app_invoices/{source}"),
                200,
                json!({"snapshots": [{"snapshot": source, "state": "SUCCESS", "indices": ["app_invoices_2024"]}]}),
            ),
            route("POST /app_orders_2024/_close?*", 200, json!({"acknowledged": true, "indices": {}})),
            route(
                &format!("POST /_snapshot/dbo-app_invoices/{source}/_restore?*"),
                400,
                json!({"error": {"reason": "cannot restore index [app_orders_2024] with [2] shards from a snapshot of index [app_invoices_2024] with [1] shards"}}),
            ),
        ],
    )?);
    let (rendered, runner) = world.render(
        &manifest_yaml(&schema(), &[("from-invoices", &format!("key: {source}"))]),
        &tools,
    )?;
    let outcome = runner.run_job(restore_job(&rendered, "from-invoices")?)?;
    let c = container(&outcome);
    assert_eq!(c.exit_code, 1, "{outcome}");
    assert!(
        c.stderr
            .contains("HTTP 400: cannot restore index [app_orders_2024]"),
        "{}",
        c.stderr
    );
    let requests = requests(&tools)?;
    assert_eq!(
        lines(&requests),
        [
            "GET /_snapshot/dbo-app_invoices",
            "PUT /_snapshot/dbo-app_invoices",
            &format!("GET /_snapshot/dbo-app_invoices/{source}"),
            "POST /app_orders_2024/_close?ignore_unavailable=true&allow_no_indices=true",
            &format!("POST /_snapshot/dbo-app_invoices/{source}/_restore?wait_for_completion=true"),
        ]
    );
    assert_eq!(
        requests[1].body.as_ref().map(|b| &b["settings"]),
        Some(
            &json!({"bucket": "search-snapshots", "base_path": "prod/eu/app_invoices",
            "readonly": true, "client": "default"})
        ),
        "a repository the cluster does not know yet is registered read-only"
    );
    assert_eq!(
        requests[4].body,
        Some(
            json!({"indices": "app_invoices,app_invoices_*", "ignore_unavailable": true,
            "include_global_state": false, "rename_pattern": "^app_invoices(.*)$",
            "rename_replacement": "app_orders$1", "include_aliases": false})
        )
    );
    Ok(())
}

#[test]
fn a_refused_restore_opens_the_indices_it_closed_again() -> Result<()> {
    let world = World::new()?;
    let mut tools = StandIns::new()?;
    let snap = "app_orders-20240502t030000z";
    tools.add(curl(
        tools.dir(),
        &[
            route("GET /_snapshot/dbo-app_orders", 200, json!({})),
            route(
                &format!("GET /_snapshot/dbo-app_orders/{snap}"),
                200,
                json!({"snapshots": [{"snapshot": snap, "state": "SUCCESS", "indices": ["app_orders_events-1"]}]}),
            ),
            route(
                "POST /app_orders_events-1/_close?*",
                200,
                json!({"acknowledged": true, "indices": {"app_orders_events-1": {"closed": true}}}),
            ),
            route("POST /_snapshot/*/_restore?*", 500, json!({"error": {"reason": "boom"}})),
            route("POST /app_orders_events-1/_open?*", 200, json!({"acknowledged": true})),
        ],
    )?);
    let (rendered, runner) = world.render(
        &manifest_yaml(&schema(), &[("by-key", &format!("key: {snap}"))]),
        &tools,
    )?;
    let outcome = runner.run_job(restore_job(&rendered, "by-key")?)?;
    let c = container(&outcome);
    assert_eq!(c.exit_code, 1, "{outcome}");
    assert!(
        c.stderr.contains("the Database's indices are unchanged"),
        "{}",
        c.stderr
    );
    let last = requests(&tools)?.pop().context("requests")?;
    assert_eq!(
        format!("{} {}", last.method, last.path),
        "POST /app_orders_events-1/_open?ignore_unavailable=true&allow_no_indices=true"
    );
    Ok(())
}
