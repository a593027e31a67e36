//! The checks, in the order they run. Each returns one named result whose failure message
//! tells the plugin author what to change.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use dbo_engine::{CallError, Capability, Engine, EngineInfo, Instance, Snapshot, Storage};
use dbo_plugin_runtime::PluginRuntime;
use dbo_render::{PasswordSource, RenderOptions, Rendered};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;

use super::report::{CallFigures, Check, Figures, Limits, PluginSummary, Report};
use super::sample::{self, CanaryPasswords, One, Timed};

/// The seed `render --insecure-password-seed` would get, so golden cases are reproducible.
const CASE_PASSWORD_SEED: u64 = 0;

const NAMES: [&str; 9] = [
    "load",
    "describe",
    "capabilities",
    "kinds-and-policy",
    "determinism",
    "secrets",
    "robustness",
    "budgets",
    "cases",
];

pub fn run_all(
    runtime: &PluginRuntime,
    file: &Path,
    cases: Option<&Path>,
    update: bool,
    limits: Limits,
) -> Report {
    let mut report = Report {
        plugin: PluginSummary {
            file: file.display().to_string(),
            ..PluginSummary::default()
        },
        checks: Vec::new(),
        figures: Figures {
            limits,
            exports: Default::default(),
        },
        passed: false,
        unloadable: false,
    };
    let plugin = match runtime.load_file(file) {
        Ok(p) => p,
        Err(e) => {
            report.unloadable = true;
            report.checks.push(Check::fail("load", e.to_string()));
            for name in &NAMES[1..] {
                report.checks.push(Check::skip(
                    name,
                    "the plugin did not load; fix `load` first",
                ));
            }
            return report;
        }
    };
    let info = plugin.info().clone();
    report.plugin.name = Some(info.name.clone());
    report.plugin.version = Some(info.version.clone());
    report.plugin.api_version = Some(info.api_version.clone());
    report.plugin.digest = Some(plugin.digest().to_string());
    report.checks.push(Check::pass(
        "load",
        format!(
            "imports {} interface(s), all allowed",
            plugin.imports().len()
        ),
    ));

    let timed = Timed::new(&plugin);
    report.checks.push(describe(&timed, &info));
    let suite = Suite::new(&timed, &info, cases);
    report.checks.push(suite.capabilities());
    let rendered = suite.kinds_and_policy(&mut report.checks);
    report.checks.push(suite.determinism());
    report.checks.push(suite.secrets(rendered.as_ref()));
    report.checks.push(suite.robustness());
    report
        .checks
        .push(cases_check(&timed, &info, cases, update));
    let (check, exports) = budgets(&timed, limits);
    report.figures.exports = exports;
    // Budgets report what every other check called, so it is computed last but listed in order.
    report.checks.insert(report.checks.len() - 1, check);
    report.passed = report.failed() == 0;
    report
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_semver(s: &str) -> bool {
    let core = s.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
        })
        && !s.ends_with(['-', '+'])
}

fn cap_name(c: &Capability) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{c:?}"))
}

fn describe(engine: &dyn Engine, info: &EngineInfo) -> Check {
    let mut problems = Vec::new();
    if let Err(e) = engine.describe() {
        return Check::fail(
            "describe",
            format!("describe failed when called again: {e}"),
        );
    }
    if !is_dns_label(&info.name) {
        problems.push(format!(
            "name {:?} is not a DNS label; users write it in DbInstance spec.engine: use 1-63 \
             lowercase letters, digits and '-', starting and ending with a letter or digit",
            info.name
        ));
    }
    if !is_semver(&info.version) {
        problems.push(format!(
            "version {:?} is not a semantic version; report MAJOR.MINOR.PATCH, e.g. \"1.2.0\"",
            info.version
        ));
    }
    let supported = dbo_plugin_runtime::supported_api_versions();
    if !supported.contains(&info.api_version) {
        problems.push(format!(
            "api_version {:?} is not one this host supports ({}); report the version of the \
             WIT contract the plugin is built against",
            info.api_version,
            supported.join(", ")
        ));
    }
    let mut seen = BTreeSet::new();
    for c in &info.capabilities {
        if !seen.insert(*c as u8) {
            problems.push(format!(
                "capability {} is declared twice; list each capability once",
                cap_name(c)
            ));
        }
    }
    match serde_json::from_str::<Value>(&info.options_schema) {
        Ok(Value::Object(_)) => {}
        Ok(other) => problems.push(format!(
            "options_schema is JSON but not an object (it is {other}); return a JSON Schema \
             object such as {{\"type\":\"object\"}}"
        )),
        Err(e) => problems.push(format!(
            "options_schema is not valid JSON ({e}); return a JSON Schema object such as \
             {{\"type\":\"object\"}}"
        )),
    }
    let mut roles = BTreeSet::new();
    for c in &info.capabilities {
        match c {
            Capability::Backup => roles.insert("backup"),
            Capability::Restore => roles.insert("restore"),
            Capability::Commission | Capability::SchemaRollForward => roles.insert("commission"),
        };
    }
    for role in roles {
        let images: Vec<_> = info.images.iter().filter(|i| i.role == role).collect();
        match images.as_slice() {
            [] => problems.push(format!(
                "no image for role {role:?}, which a declared capability needs; add \
                 Image {{ role: \"{role}\", reference: \"registry/name:tag\" }}"
            )),
            [one] => {
                if one.reference.trim().is_empty() || one.reference.contains(char::is_whitespace) {
                    problems.push(format!(
                        "image of role {role:?} has reference {:?}; give a pullable image \
                         reference such as \"ghcr.io/acme/tools:1.0.0\"",
                        one.reference
                    ));
                }
            }
            _ => problems.push(format!(
                "{} images for role {role:?}; declare exactly one per role",
                images.len()
            )),
        }
    }
    if problems.is_empty() {
        let caps: Vec<String> = info.capabilities.iter().map(cap_name).collect();
        Check::pass(
            "describe",
            format!(
                "{} {} (API {}), capabilities: {}",
                info.name,
                info.version,
                info.api_version,
                if caps.is_empty() {
                    "none".into()
                } else {
                    caps.join(", ")
                }
            ),
        )
    } else {
        Check::fail("describe", problems.join("; "))
    }
}

/// The standard sample, once the options the plugin accepts are known.
struct Suite<'a> {
    engine: &'a Timed<'a>,
    info: &'a EngineInfo,
    /// Instance options of the first case, else `{}`; `Err` says why the sample cannot run.
    options: Result<Value, String>,
    /// The engine refuses an access-key Secret for S3 (its server holds the credentials), so
    /// the sample uses ambient credentials.
    ambient: bool,
    /// Database options of the first case.
    database_options: Option<Value>,
    passwords: CanaryPasswords,
}

fn has(info: &EngineInfo, c: Capability) -> bool {
    info.capabilities.contains(&c)
}

impl<'a> Suite<'a> {
    fn new(engine: &'a Timed<'a>, info: &'a EngineInfo, cases: Option<&Path>) -> Self {
        let accepts = |options: &Value| -> Result<(), String> {
            let instance = sample::instance(&info.name, &options.to_string());
            match engine.validate(&instance, None) {
                Ok(diags) => {
                    let errors: Vec<String> = diags
                        .iter()
                        .filter(|d| d.severity == dbo_engine::Severity::Error)
                        .map(ToString::to_string)
                        .collect();
                    if errors.is_empty() {
                        Ok(())
                    } else {
                        Err(errors.join("; "))
                    }
                }
                Err(e) => Err(e.to_string()),
            }
        };
        // The first case, when there is one, is the author's own standard input: its options
        // are what the engine is meant to run with (some backups are opt-in by option).
        let empty = Value::Object(Default::default());
        let (options, database_options) = match case_options(cases, &info.name) {
            Some((options, database)) => (
                accepts(&options).map(|()| options.clone()).map_err(|e| {
                    format!("validate rejects the options of the first case ({options}): {e}")
                }),
                database,
            ),
            None => (
                accepts(&empty).map(|()| empty).map_err(|why| {
                    format!(
                        "the plugin needs instance options (validate rejects {{}}: {why}); add \
                         a case, cases/<name>/input.yaml, with a DbInstance whose spec.options \
                         it accepts"
                    )
                }),
                None,
            ),
        };
        let mut suite = Self {
            engine,
            info,
            options,
            ambient: false,
            database_options,
            passwords: CanaryPasswords::new(),
        };
        suite.ambient = suite.refuses_access_keys();
        suite
    }

    /// Whether backup or restore refuse the access-key sample as invalid but accept ambient
    /// credentials: then ambient credentials are the engine's standard request.
    fn refuses_access_keys(&self) -> bool {
        let Some(instance) = self.instance() else {
            return false;
        };
        let db = self.database();
        let refs = sample::refs(None);
        let refused = |ambient: bool| {
            let storage = sample::s3_with(ambient);
            let backup = has(self.info, Capability::Backup)
                && matches!(
                    self.engine.backup(&dbo_engine::BackupRequest {
                        storage: storage.clone(),
                        ..sample::backup(&instance, &db, &refs)
                    }),
                    Err(CallError::Plugin {
                        error: dbo_engine::PluginError::Invalid(_),
                        ..
                    })
                );
            let restore = has(self.info, Capability::Restore)
                && matches!(
                    self.engine.restore(&dbo_engine::RestoreRequest {
                        storage,
                        ..sample::restore(&instance, &db, &refs, Snapshot::Latest)
                    }),
                    Err(CallError::Plugin {
                        error: dbo_engine::PluginError::Invalid(_),
                        ..
                    })
                );
            backup || restore
        };
        refused(false) && !refused(true)
    }

    fn database(&self) -> dbo_engine::Database {
        dbo_engine::Database {
            options: self
                .database_options
                .as_ref()
                .map_or_else(|| "{}".into(), Value::to_string),
            ..sample::database()
        }
    }

    fn instance(&self) -> Option<Instance> {
        let options = self.options.as_ref().ok()?;
        Some(sample::instance(&self.info.name, &options.to_string()))
    }

    /// Every call the sample makes, in order, each with its answer rendered as JSON.
    fn calls(&self, engine: &dyn Engine) -> Vec<(String, Result<Value, String>)> {
        let Some(instance) = self.instance() else {
            return Vec::new();
        };
        let db = self.database();
        let json = |r: Result<Value, CallError>| r.map_err(|e| e.to_string());
        let mut out = vec![
            (
                "describe".to_string(),
                json(
                    engine
                        .describe()
                        .map(|i| serde_json::to_value(i).unwrap_or_default()),
                ),
            ),
            (
                "validate(instance)".to_string(),
                json(
                    engine
                        .validate(&instance, None)
                        .map(|d| serde_json::to_value(d).unwrap_or_default()),
                ),
            ),
            (
                "validate(instance, database)".to_string(),
                json(
                    engine
                        .validate(&instance, Some(&db))
                        .map(|d| serde_json::to_value(d).unwrap_or_default()),
                ),
            ),
        ];
        let layout = engine.credentials(&instance, &db);
        let refs = sample::refs(layout.as_ref().ok());
        out.push((
            "credentials".into(),
            json(layout.map(|l| serde_json::to_value(l).unwrap_or_default())),
        ));
        if has(self.info, Capability::Backup) {
            let r = engine.backup(&dbo_engine::BackupRequest {
                storage: sample::s3_with(self.ambient),
                ..sample::backup(&instance, &db, &refs)
            });
            out.push((
                "backup".into(),
                json(r.map(|j| serde_json::to_value(j).unwrap_or_default())),
            ));
        }
        if has(self.info, Capability::Commission) || has(self.info, Capability::SchemaRollForward) {
            let r = engine.commission(&sample::commission(&instance, &db, &refs));
            out.push((
                "commission".into(),
                json(r.map(|j| serde_json::to_value(j).unwrap_or_default())),
            ));
        }
        if has(self.info, Capability::Restore) {
            // A snapshot key is in the engine's own format, so only the engine-neutral variants
            // are standard requests; robustness tries keys.
            for snapshot in [
                Snapshot::Latest,
                Snapshot::PointInTime("2026-01-01T00:00:00Z".into()),
            ] {
                let label = format!("restore({})", snapshot_label(&snapshot));
                let r = engine.restore(&dbo_engine::RestoreRequest {
                    storage: sample::s3_with(self.ambient),
                    ..sample::restore(&instance, &db, &refs, snapshot)
                });
                out.push((
                    label,
                    json(r.map(|j| serde_json::to_value(j).unwrap_or_default())),
                ));
            }
        }
        out
    }

    fn capabilities(&self) -> Check {
        if let Err(why) = &self.options {
            return Check::skip("capabilities", why.clone());
        }
        let calls = self.calls(self.engine);
        let failures: Vec<String> = calls
            .iter()
            .filter_map(|(call, r)| r.as_ref().err().map(|e| format!("{call}: {e}")))
            .collect();
        if failures.is_empty() {
            Check::pass("capabilities", format!("{} calls answered", calls.len()))
        } else {
            Check::fail(
                "capabilities",
                format!(
                    "a standard, valid request must get an answer, not an error; fix: {}",
                    failures.join("; ")
                ),
            )
        }
    }

    fn render(&self, engine: &dyn Engine) -> Result<Rendered, String> {
        let options = self.options.as_ref().map_err(Clone::clone)?;
        let yaml = sample::manifests_yaml(
            &self.info.name,
            options,
            self.database_options.as_ref(),
            self.ambient,
            has(self.info, Capability::Backup),
            has(self.info, Capability::Restore),
        );
        let manifests = dbo_api::manifest::parse(&yaml)
            .map_err(|e| format!("the harness's sample manifests do not parse: {e}"))?;
        let engines = One {
            name: self.info.name.clone(),
            engine,
        };
        let mut passwords = CanaryPasswords {
            canary: self.passwords.canary.clone(),
        };
        dbo_render::render_with(
            &manifests,
            &engines,
            &mut passwords as &mut dyn PasswordSource,
            &RenderOptions::default(),
        )
        .map_err(|errors| {
            errors
                .0
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn kinds_and_policy(&self, checks: &mut Vec<Check>) -> Option<Rendered> {
        const NAME: &str = "kinds-and-policy";
        if let Err(why) = &self.options {
            checks.push(Check::skip(NAME, why.clone()));
            return None;
        }
        match self.render(self.engine) {
            Ok(rendered) => {
                let mut missing = Vec::new();
                if has(self.info, Capability::Backup) && rendered.cron_jobs.is_empty() {
                    missing.push("a backup CronJob");
                }
                if has(self.info, Capability::Restore) && rendered.jobs.is_empty() {
                    missing.push("a restore Job");
                }
                if missing.is_empty() {
                    checks.push(Check::pass(
                        NAME,
                        format!(
                            "{} Job(s), {} CronJob(s), {} Secret(s) rendered and accepted by the host policy",
                            rendered.jobs.len(),
                            rendered.cron_jobs.len(),
                            rendered.secrets.len()
                        ),
                    ));
                } else {
                    checks.push(Check::fail(
                        NAME,
                        format!("the sample rendered without {}", missing.join(" and ")),
                    ));
                }
                Some(rendered)
            }
            Err(e) => {
                checks.push(Check::fail(NAME, e));
                None
            }
        }
    }

    fn determinism(&self) -> Check {
        const NAME: &str = "determinism";
        if let Err(why) = &self.options {
            return Check::skip(NAME, why.clone());
        }
        // Every call of the production runtime gets a fresh instance: two runs of the sample
        // are two sets of fresh instances.
        let first = self.calls(self.engine);
        let second = self.calls(self.engine);
        let mut differ = Vec::new();
        for ((call, a), (_, b)) in first.iter().zip(&second) {
            if a != b {
                let a = format!("{a:?}");
                let b = format!("{b:?}");
                differ.push(format!("{call}: {}", first_difference(&a, &b)));
            }
        }
        if differ.is_empty()
            && let (Ok(a), Ok(b)) = (self.render(self.engine), self.render(self.engine))
            && a.objects() != b.objects()
        {
            differ.push("the rendered objects differ between two renders".into());
        }
        if differ.is_empty() {
            Check::pass(
                NAME,
                format!("{} calls gave identical answers twice", first.len()),
            )
        } else {
            Check::fail(
                NAME,
                format!(
                    "the same request got different answers: {}; output must depend only on the \
                     request (no clocks, random numbers, counters or hash-map iteration order), \
                     or every reconcile rewrites the Jobs",
                    differ.join("; ")
                ),
            )
        }
    }

    fn secrets(&self, rendered: Option<&Rendered>) -> Check {
        const NAME: &str = "secrets";
        if let Err(why) = &self.options {
            return Check::skip(NAME, why.clone());
        }
        let Some(rendered) = rendered else {
            return Check::skip(NAME, "nothing rendered; fix `kinds-and-policy` first");
        };
        let mut problems = Vec::new();
        for object in rendered.objects() {
            let kind = object["kind"].as_str().unwrap_or("").to_string();
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if kind == "Secret" {
                continue;
            }
            let mut hits = Vec::new();
            find_string(&object, "", &self.passwords.canary, &mut hits);
            for path in hits {
                problems.push(format!(
                    "{kind} {name}: the generated password appears at {path}; read it from the \
                     credentials Secret (secretKeyRef or a secret volume), never copy it"
                ));
            }
            for (path, container) in containers(&object) {
                check_container(&format!("{kind} {name} {path}"), container, &mut problems);
            }
        }
        if problems.is_empty() {
            Check::pass(
                NAME,
                "no canary secret value or Secret name leaks into pods; secrets are referenced",
            )
        } else {
            Check::fail(NAME, problems.join("; "))
        }
    }

    fn robustness(&self) -> Check {
        const NAME: &str = "robustness";
        let mut traps = Vec::new();
        let mut total = 0usize;
        for (label, instance, db, storage) in garbage(&self.info.name) {
            let refs = sample::refs(None);
            let mut record = |call: &str, r: Result<(), CallError>| {
                total += 1;
                if let Err(CallError::Runtime(e)) = r {
                    traps.push(format!(
                        "{label}: {call} trapped: {}",
                        shorten(&e.to_string(), 400)
                    ));
                }
            };
            record(
                "validate(instance)",
                self.engine.validate(&instance, None).map(drop),
            );
            record(
                "validate(instance, database)",
                self.engine.validate(&instance, Some(&db)).map(drop),
            );
            record(
                "credentials",
                self.engine.credentials(&instance, &db).map(drop),
            );
            let backup = dbo_engine::BackupRequest {
                storage: storage.clone(),
                ..sample::backup(&instance, &db, &refs)
            };
            record("backup", self.engine.backup(&backup).map(drop));
            record(
                "commission",
                self.engine
                    .commission(&sample::commission(&instance, &db, &refs))
                    .map(drop),
            );
            for snapshot in snapshots() {
                let label = format!("restore({})", snapshot_label(&snapshot));
                let request = dbo_engine::RestoreRequest {
                    storage: storage.clone(),
                    ..sample::restore(&instance, &db, &refs, snapshot)
                };
                record(&label, self.engine.restore(&request).map(drop));
            }
        }
        if traps.is_empty() {
            Check::pass(
                NAME,
                format!("{total} garbage and edge-case calls answered without a trap"),
            )
        } else {
            Check::fail(
                NAME,
                format!(
                    "{} of {total} garbage calls trapped; answer bad input with \
                     PluginError::Invalid diagnostics naming the field, never a panic, unwrap \
                     or endless loop: {}",
                    traps.len(),
                    traps.join("; ")
                ),
            )
        }
    }
}

fn snapshot_label(s: &Snapshot) -> String {
    match s {
        Snapshot::Latest => "latest".into(),
        Snapshot::Key(k) => format!("key {}", shorten(k, 40)),
        Snapshot::PointInTime(t) => format!("pointInTime {}", shorten(t, 40)),
    }
}

fn snapshots() -> Vec<Snapshot> {
    vec![
        Snapshot::Latest,
        Snapshot::Key(String::new()),
        Snapshot::Key("../../etc/passwd".into()),
        Snapshot::Key("conformance/app/app-20260101T000000Z.dump".into()),
        Snapshot::PointInTime(String::new()),
        Snapshot::PointInTime("yesterday".into()),
        Snapshot::PointInTime("2026-13-45T99:99:99Z".into()),
    ]
}

type Garbage = (String, Instance, dbo_engine::Database, Storage);

/// Inputs the host's validation would normally stop, and edge cases it lets through.
fn garbage(engine: &str) -> Vec<Garbage> {
    let base = || (sample::instance(engine, "{}"), sample::database());
    let mut out: Vec<Garbage> = Vec::new();
    let mut push = |label: &str, f: &dyn Fn(&mut Instance, &mut dbo_engine::Database)| {
        let (mut i, mut d) = base();
        f(&mut i, &mut d);
        out.push((label.to_string(), i, d, sample::s3()));
    };
    push("empty strings", &|i, d| {
        i.name.clear();
        i.host.clear();
        i.backup_host.clear();
        i.options.clear();
        d.name.clear();
        d.namespace.clear();
        d.options.clear();
    });
    push("empty database name", &|_, d| d.name.clear());
    push("options \"[\"", &|i, d| {
        i.options = "[".into();
        d.options = "[".into();
    });
    push("options \"[1]\"", &|i, d| {
        i.options = "[1]".into();
        d.options = "[1]".into();
    });
    push("options \"null\"", &|i, d| {
        i.options = "null".into();
        d.options = "null".into();
    });
    push("options with unknown and mistyped fields", &|i, d| {
        i.options = r#"{"edition":7,"unknown":{"deep":[null]}}"#.into();
        d.options = r#"{"roles":"x","schemas":{}}"#.into();
    });
    push("10 KB names", &|i, d| {
        i.name = "a".repeat(10 * 1024);
        i.host = "h".repeat(10 * 1024);
        d.name = "d".repeat(10 * 1024);
        d.namespace = "n".repeat(10 * 1024);
    });
    push("unicode names", &|i, d| {
        i.name = "ínstance-ß-数据库".into();
        d.name = "база-données-😀\"'`$(x)\\".into();
        d.namespace = "名前空間".into();
    });
    push("port 0", &|i, _| i.port = 0);
    push("extensions and schema", &|_, d| {
        d.extensions = vec![String::new(), "x; DROP TABLE users".into()];
        d.schema = Some(dbo_engine::SchemaRef {
            config_map: String::new(),
            version: u32::MAX,
        });
    });
    let (i, d) = base();
    out.push((
        "gcs storage".into(),
        i.clone(),
        d.clone(),
        Storage::Gcs("bucket".into()),
    ));
    out.push((
        "S3 with IRSA and empty fields".into(),
        i.clone(),
        d.clone(),
        Storage::S3(dbo_engine::S3Target {
            bucket: String::new(),
            prefix: String::new(),
            region: None,
            endpoint: Some(String::new()),
            auth: dbo_engine::S3Auth::Irsa(String::new()),
        }),
    ));
    out.push((
        "S3 with ambient credentials".into(),
        i,
        d,
        Storage::S3(dbo_engine::S3Target {
            auth: dbo_engine::S3Auth::Ambient,
            endpoint: Some("http://minio.local:9000".into()),
            ..match sample::s3() {
                Storage::S3(t) => t,
                Storage::Gcs(_) => unreachable!("sample::s3 is S3"),
            }
        }),
    ));
    out
}

fn budgets(
    timed: &Timed<'_>,
    limits: Limits,
) -> (Check, std::collections::BTreeMap<String, CallFigures>) {
    let times = timed.times.lock().map(|t| t.clone()).unwrap_or_default();
    let mut exports = std::collections::BTreeMap::new();
    let mut slowest: Option<(&str, Duration)> = None;
    for (export, durations) in &times {
        let mut sorted = durations.clone();
        sorted.sort();
        let max = sorted.last().copied().unwrap_or_default();
        let median = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
        if slowest.is_none_or(|(_, d)| max > d) {
            slowest = Some((export, max));
        }
        exports.insert(
            export.to_string(),
            CallFigures {
                calls: sorted.len(),
                max_micros: max.as_micros(),
                median_micros: median.as_micros(),
            },
        );
    }
    let message = match slowest {
        Some((export, d)) => format!(
            "slowest call {export} {} µs of a {} ms deadline; memory cap {} MiB per call \
             (the runtime stops a call that exceeds either, which fails the check that made it)",
            d.as_micros(),
            limits.timeout_ms,
            limits.memory_mib
        ),
        None => "no calls were made".into(),
    };
    (Check::pass("budgets", message), exports)
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}…")
    }
}

fn first_difference(a: &str, b: &str) -> String {
    let at = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map(|((i, _), _)| i)
        .unwrap_or(a.len().min(b.len()));
    let start = a[..at].char_indices().rev().nth(30).map_or(0, |(i, _)| i);
    let tail = |s: &str| shorten(s.get(start..).unwrap_or(""), 80);
    format!("first call …{}…, second call …{}…", tail(a), tail(b))
}

/// JSON paths of every string in `v` that contains `needle`.
fn find_string(v: &Value, path: &str, needle: &str, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.contains(needle) => out.push(path.to_string()),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                find_string(item, &format!("{path}[{i}]"), needle, out);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                find_string(item, &format!("{path}.{k}"), needle, out);
            }
        }
        _ => {}
    }
}

/// Every container of a Job or CronJob, with its path in the object.
fn containers(object: &Value) -> Vec<(String, &Value)> {
    let pod = if object["kind"] == "CronJob" {
        &object["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    } else {
        &object["spec"]["template"]["spec"]
    };
    let mut out = Vec::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in pod[list].as_array().into_iter().flatten().enumerate() {
            let name = c["name"].as_str().unwrap_or("?");
            out.push((format!("{list}[{i}] ({name})"), c));
        }
    }
    out
}

/// Whether an env var of this name holds a secret (and so must never be a literal).
fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    if ["_FILE", "_DIR", "_PATH"]
        .iter()
        .any(|s| upper.ends_with(s))
    {
        return false;
    }
    let words: Vec<&str> = upper.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    words.iter().any(|w| {
        matches!(
            *w,
            "PASSWORD"
                | "PASSWD"
                | "PASS"
                | "PWD"
                | "SECRET"
                | "TOKEN"
                | "CREDENTIAL"
                | "CREDENTIALS"
                | "APIKEY"
        )
    }) || words.windows(2).any(|w| {
        matches!(w[0], "ACCESS" | "PRIVATE" | "API" | "SECRET" | "SIGNING") && w[1] == "KEY"
    })
}

fn check_container(at: &str, c: &Value, problems: &mut Vec<String>) {
    let canaries = [
        sample::CREDENTIALS_SECRET,
        sample::S3_SECRET,
        sample::ADMIN_SECRET,
    ];
    for e in c["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or("");
        let Some(value) = e.get("value").and_then(Value::as_str) else {
            continue;
        };
        if looks_secret(name) {
            problems.push(format!(
                "{at}: env {name} looks like a secret but has a literal value; set it with \
                 valueFrom.secretKeyRef, or mount the Secret and pass a {name}_FILE path"
            ));
        }
        if let Some(secret) = canaries.iter().find(|s| value.contains(*s)) {
            problems.push(format!(
                "{at}: env {name} carries the Secret name {secret:?} as a literal; reference \
                 the Secret with secretKeyRef or a secret volume instead"
            ));
        }
    }
    for field in ["command", "args"] {
        for (i, arg) in c[field].as_array().into_iter().flatten().enumerate() {
            let Some(arg) = arg.as_str() else { continue };
            if let Some(secret) = canaries.iter().find(|s| arg.contains(*s)) {
                problems.push(format!(
                    "{at}: {field}[{i}] carries the Secret name {secret:?}; a Secret is only \
                     referenced by secretKeyRef or a secret volume, never passed on a command line"
                ));
            }
        }
    }
}

/// The instance options of the first case that has a DbInstance for this engine, with the
/// options of the first Database on that instance.
fn case_options(cases: Option<&Path>, engine: &str) -> Option<(Value, Option<Value>)> {
    for (_, dir) in case_dirs(cases?).ok()? {
        let Ok(text) = std::fs::read_to_string(dir.join("input.yaml")) else {
            continue;
        };
        let Ok(m) = dbo_api::manifest::parse(&text) else {
            continue;
        };
        let Some(instance) = m.instances.iter().find(|i| i.spec.engine == engine) else {
            continue;
        };
        let options = instance
            .spec
            .options
            .clone()
            .unwrap_or_else(|| Value::Object(Default::default()));
        let database = m
            .databases
            .iter()
            .find(|d| Some(&d.spec.instance) == instance.metadata.name.as_ref())
            .and_then(|d| d.spec.options.clone());
        return Some((options, database));
    }
    None
}

fn case_dirs(dir: &Path) -> std::io::Result<Vec<(String, std::path::PathBuf)>> {
    let mut out: Vec<(String, std::path::PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .map(|p| {
            (
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                p,
            )
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Renders one case as `db-operator render --insecure-password-seed` prints it.
fn render_case(engine: &dyn Engine, info: &EngineInfo, input: &str) -> Result<String, String> {
    let manifests = dbo_api::manifest::parse(input).map_err(|e| e.to_string())?;
    let engines = One {
        name: info.name.clone(),
        engine,
    };
    let mut passwords = dbo_controller::Passwords(StdRng::seed_from_u64(CASE_PASSWORD_SEED));
    let rendered =
        dbo_render::render(&manifests, &engines, &mut passwords).map_err(|e| e.to_string())?;
    let mut s = String::new();
    for o in rendered.objects() {
        s.push_str("---\n");
        s.push_str(&serde_yaml::to_string(&o).map_err(|e| e.to_string())?);
    }
    Ok(s)
}

fn cases_check(
    engine: &dyn Engine,
    info: &EngineInfo,
    cases: Option<&Path>,
    update: bool,
) -> Check {
    const NAME: &str = "cases";
    let Some(dir) = cases else {
        return Check::skip(
            NAME,
            "no cases folder; add cases/<name>/input.yaml beside the plugin (or pass --cases DIR) \
             and run with --update to record golden output",
        );
    };
    let dirs = match case_dirs(dir) {
        Ok(d) => d,
        Err(e) => return Check::fail(NAME, format!("{}: {e}", dir.display())),
    };
    if dirs.is_empty() {
        return Check::skip(NAME, format!("{} has no case folders", dir.display()));
    }
    let mut problems = Vec::new();
    let mut recorded = 0;
    for (name, case) in &dirs {
        let input_path = case.join("input.yaml");
        let expected_path = case.join("expected.yaml");
        let input = match std::fs::read_to_string(&input_path) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("case {name}: {}: {e}", input_path.display()));
                continue;
            }
        };
        let actual = match render_case(engine, info, &input) {
            Ok(a) => a,
            Err(e) => {
                problems.push(format!("case {name}: rendering failed: {e}"));
                continue;
            }
        };
        if update {
            match std::fs::write(&expected_path, &actual) {
                Ok(()) => recorded += 1,
                Err(e) => problems.push(format!("case {name}: {}: {e}", expected_path.display())),
            }
            continue;
        }
        match std::fs::read_to_string(&expected_path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => problems.push(format!(
                "case {name}: output differs from expected.yaml:\n{}\n  if the change is intended, run with --update",
                line_diff(&expected, &actual)
            )),
            Err(_) => problems.push(format!(
                "case {name}: {} is missing; run with --update to record it",
                expected_path.display()
            )),
        }
    }
    if !problems.is_empty() {
        Check::fail(NAME, problems.join("; "))
    } else if update {
        Check::pass(
            NAME,
            format!("recorded expected.yaml of {recorded} case(s)"),
        )
    } else {
        Check::pass(NAME, format!("{} case(s) match expected.yaml", dirs.len()))
    }
}

/// The differing lines, `-` expected and `+` actual, a few at most.
fn line_diff(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let mut out = Vec::new();
    for i in 0..e.len().max(a.len()) {
        let (x, y) = (e.get(i), a.get(i));
        if x != y {
            if let Some(x) = x {
                out.push(format!("  line {}: - {x}", i + 1));
            }
            if let Some(y) = y {
                out.push(format!("  line {}: + {y}", i + 1));
            }
        }
        if out.len() >= 10 {
            out.push("  …".into());
            break;
        }
    }
    out.join("\n")
}
