//! The runner against a small image built here, on this machine's real namespaces.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, PodSpec, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;

const IMAGE: &str = "dbo-e2e/test-image:1";

/// A build directory like `deploy/images/<engine>/`: Dockerfile + rootfs.
struct TestImage {
    dir: tempfile::TempDir,
}

impl TestImage {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("Dockerfile"),
            "FROM debian:bookworm-slim\n\
             ENV IMAGE_VAR=\"from the image\" \\\n    RCLONE_CONFIG=/etc/test-image/rclone.conf\n\
             COPY rootfs/ /\n\
             WORKDIR /srv/app\n\
             ENTRYPOINT [\"/usr/local/bin/hello\"]\n\
             CMD [\"world\"]\n",
        )
        .expect("Dockerfile");
        let bin = dir.path().join("rootfs/usr/local/bin");
        std::fs::create_dir_all(&bin).expect("rootfs");
        let hello = bin.join("hello");
        std::fs::write(&hello, "#!/bin/sh\necho \"hello $1 from $0 in $(pwd)\"\n").expect("script");
        std::fs::set_permissions(&hello, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let etc = dir.path().join("rootfs/etc/test-image");
        std::fs::create_dir_all(&etc).expect("rootfs etc");
        std::fs::write(etc.join("rclone.conf"), "[s3]\ntype = s3\n").expect("conf");
        TestImage { dir }
    }

    fn runner(&self) -> PodRunner {
        let mut images = ImageMap::new();
        images.insert(IMAGE, self.dir.path()).expect("image loads");
        let mut runner = PodRunner::new(images)
            .unwrap_or_else(|e| panic!("the pod runner needs its tools: {e}"));
        runner.add_secrets([&secret(
            "app",
            "creds",
            &[("password", "s3cr3t"), ("user", "app")],
        )]);
        runner.add_config_maps([&config_map(
            "app",
            "settings",
            &[("mode", "fast"), ("config.yaml", "a: 1\n")],
        )]);
        runner
    }
}

fn meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(namespace.into()),
        name: Some(name.into()),
        ..ObjectMeta::default()
    }
}

fn secret(namespace: &str, name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: meta(namespace, name),
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    }
}

fn config_map(namespace: &str, name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: meta(namespace, name),
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        ..ConfigMap::default()
    }
}

fn pod(value: serde_json::Value) -> PodSpec {
    serde_json::from_value(value).expect("a valid PodSpec")
}

fn run(runner: &PodRunner, spec: &PodSpec) -> PodOutcome {
    runner
        .run_pod("app", "test-pod", spec)
        .unwrap_or_else(|e| panic!("pod could not start: {e}"))
}

fn env_lines(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn the_environment_is_exactly_what_spec_and_image_declare() {
    let image = TestImage::new();
    let runner = image.runner();
    // `env` as the command prints the environment the container got, nothing added by a shell.
    let spec = pod(serde_json::json!({
        "containers": [{
            "name": "main",
            "image": IMAGE,
            "command": ["env"],
            "env": [
                {"name": "LITERAL", "value": "plain"},
                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
                {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "DSN", "value": "user=$(LITERAL) mode=$(MODE) $(UNDEFINED)"},
                {"name": "OPTIONAL", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nope", "optional": true}}}
            ]
        }]
    }));
    let outcome = run(&runner, &spec);
    assert!(outcome.succeeded(), "{outcome}");
    let env = env_lines(&outcome.containers[0].stdout);

    let path = env.get("PATH").cloned().unwrap_or_default();
    assert!(
        path.starts_with("/opt/image-emulation/bin:") && path.ends_with(DEFAULT_PATH),
        "PATH is the image's with the emulated tools in front: {path}"
    );
    let expected: BTreeMap<String, String> = [
        ("LITERAL", "plain"),
        ("PASSWORD", "s3cr3t"),
        ("MODE", "fast"),
        ("NAMESPACE", "app"),
        ("DSN", "user=plain mode=fast $(UNDEFINED)"),
        ("IMAGE_VAR", "from the image"),
        ("RCLONE_CONFIG", "/etc/test-image/rclone.conf"),
        ("PATH", path.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    // Equality, not inclusion: nothing of the test process (its PATH, HOME, CARGO_*, AWS_*) leaks.
    assert_eq!(env, expected);
}

#[test]
fn a_missing_secret_or_key_is_refused_before_anything_runs() {
    let image = TestImage::new();
    let runner = image.runner();
    let marker = tempfile::tempdir().expect("temp dir");
    let touched = marker.path().join("ran");
    let with_env = |name: &str, key: &str| {
        pod(serde_json::json!({
            "initContainers": [{
                "name": "first", "image": IMAGE,
                "command": ["touch", touched.display().to_string()]
            }],
            "containers": [{
                "name": "main", "image": IMAGE, "command": ["true"],
                "env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}]
            }]
        }))
    };

    let err = runner
        .run_pod("app", "p", &with_env("creds", "pasword"))
        .expect_err("a missing key must stop the pod");
    let message = err.to_string();
    assert!(matches!(err, RunError::SecretKeyNotFound { .. }), "{err:?}");
    assert!(
        message.contains("\"pasword\"")
            && message.contains("app/creds")
            && message.contains("PASSWORD"),
        "names key, Secret and variable: {message}"
    );

    let err = runner
        .run_pod("app", "p", &with_env("db-credentials", "password"))
        .expect_err("a missing Secret must stop the pod");
    assert!(matches!(err, RunError::SecretNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("app/db-credentials"), "{err}");

    // Secrets are per namespace: the same pod in another namespace does not see `app/creds`.
    let err = runner
        .run_pod("other", "p", &with_env("creds", "password"))
        .expect_err("another namespace's Secret is not visible");
    assert!(err.to_string().contains("other/creds"), "{err}");

    assert!(
        !touched.exists(),
        "no container may run when the pod's config is broken"
    );
}

#[test]
fn volumes_and_image_files_appear_at_the_paths_the_spec_names() {
    let image = TestImage::new();
    let runner = image.runner();
    let spec = pod(serde_json::json!({
        "volumes": [
            {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400,
                "items": [{"key": "password", "path": "nested/pw"}]}},
            {"name": "settings", "configMap": {"name": "settings"}},
            {"name": "scratch", "emptyDir": {}}
        ],
        "initContainers": [{
            "name": "writer", "image": IMAGE,
            "command": ["sh", "-c", "echo handed-over > /scratch/note"],
            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]
        }],
        "containers": [{
            "name": "reader", "image": IMAGE,
            "command": ["sh", "-c", concat!(
                "cat /etc/dbo/creds/nested/pw; echo; ",
                "stat -c %a /etc/dbo/creds/nested/pw; ",
                "cat /etc/app/config.yaml; ",
                "cat /scratch/note; ",
                "cat \"$RCLONE_CONFIG\"; ",
                "pwd; ",
                "if echo x > /etc/dbo/creds/new 2>/dev/null; then echo secret-writable; fi; ",
                "if echo x > /etc/app/other 2>/dev/null; then echo subpath-parent-on-image; fi"
            )],
            "volumeMounts": [
                {"name": "creds", "mountPath": "/etc/dbo/creds"},
                {"name": "settings", "mountPath": "/etc/app/config.yaml", "subPath": "config.yaml"},
                {"name": "scratch", "mountPath": "/scratch", "readOnly": true}
            ]
        }]
    }));
    let outcome = run(&runner, &spec);
    assert!(outcome.succeeded(), "{outcome}");
    let reader = outcome.container("reader").expect("reader ran");
    assert_eq!(
        reader.stdout.lines().collect::<Vec<_>>(),
        [
            "s3cr3t",
            "400",
            "a: 1",
            "handed-over",
            "[s3]",
            "type = s3",
            "/srv/app",
            "subpath-parent-on-image",
        ],
        "{outcome}"
    );
}

#[test]
fn the_image_entrypoint_and_cmd_follow_the_kubernetes_rules() {
    let image = TestImage::new();
    let runner = image.runner();
    let run_with = |container: serde_json::Value| {
        let mut c = container;
        c["name"] = "main".into();
        c["image"] = IMAGE.into();
        let outcome = run(&runner, &pod(serde_json::json!({"containers": [c]})));
        assert!(outcome.succeeded(), "{outcome}");
        outcome.containers[0].stdout.trim().to_owned()
    };
    assert_eq!(
        run_with(serde_json::json!({})),
        "hello world from /usr/local/bin/hello in /srv/app"
    );
    assert_eq!(
        run_with(
            serde_json::json!({"args": ["$(WHO)"], "env": [{"name": "WHO", "value": "args"}]})
        ),
        "hello args from /usr/local/bin/hello in /srv/app"
    );
    assert_eq!(
        run_with(serde_json::json!({"command": ["hello"], "workingDir": "/made/by/runtime"})),
        "hello  from /usr/local/bin/hello in /made/by/runtime"
    );
}

#[test]
fn the_container_cannot_change_this_machines_files() {
    let image = TestImage::new();
    let runner = image.runner();
    let probe = Path::new("/etc/dbo-e2e-runner-probe");
    let spec = pod(serde_json::json!({
        "containers": [{
            "name": "main", "image": IMAGE,
            "command": ["sh", "-c",
                "echo changed > /etc/dbo-e2e-runner-probe && cat /etc/dbo-e2e-runner-probe && ls /usr/local/bin/hello"]
        }]
    }));
    let outcome = run(&runner, &spec);
    assert!(outcome.succeeded(), "{outcome}");
    assert_eq!(
        outcome.containers[0].stdout,
        "changed\n/usr/local/bin/hello\n"
    );
    assert!(
        !probe.exists(),
        "the write must stay in the container's copy-on-write layer"
    );
    assert!(
        !Path::new("/usr/local/bin/hello").exists(),
        "the image's rootfs stays in the container"
    );
}

#[test]
fn exit_codes_failed_init_containers_and_timeouts() {
    let image = TestImage::new();
    let runner = image.runner().with_timeout(Duration::from_secs(2));
    let failing = pod(serde_json::json!({
        "initContainers": [{"name": "setup", "image": IMAGE, "command": ["sh", "-c", "echo broken >&2; exit 3"],
            "terminationMessagePolicy": "FallbackToLogsOnError"}],
        "containers": [{"name": "main", "image": IMAGE, "command": ["true"]}]
    }));
    let outcome = run(&runner, &failing);
    assert!(!outcome.succeeded());
    assert_eq!(outcome.containers[0].exit_code, 3);
    assert_eq!(outcome.containers[0].stderr, "broken\n");
    assert_eq!(outcome.containers[0].termination_message, "broken");
    assert_eq!(outcome.not_started, ["main"]);

    let hanging = pod(serde_json::json!({
        "containers": [{"name": "main", "image": IMAGE,
            "command": ["sh", "-c", "sleep 600 & sleep 600; echo unreachable"]}]
    }));
    let outcome = run(&runner, &hanging);
    assert!(!outcome.succeeded());
    let main = &outcome.containers[0];
    assert!(main.timed_out, "{outcome}");
    assert_eq!(main.stdout, "");
}

#[test]
fn security_context_users_are_honoured_and_run_as_non_root_is_enforced() {
    let image = TestImage::new();
    let runner = image.runner();
    let as_user = pod(serde_json::json!({
        "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 2000},
        "volumes": [{"name": "scratch", "emptyDir": {}}, {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o440}}],
        "containers": [{"name": "main", "image": IMAGE,
            "command": ["sh", "-c", "id -u; id -g; touch /scratch/f && stat -c %g /scratch/f; cat /creds/user"],
            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}, {"name": "creds", "mountPath": "/creds"}]}]
    }));
    let outcome = run(&runner, &as_user);
    assert!(outcome.succeeded(), "{outcome}");
    assert_eq!(outcome.containers[0].stdout, "1000\n1000\n2000\napp");

    let as_root = pod(serde_json::json!({
        "securityContext": {"runAsNonRoot": true},
        "containers": [{"name": "main", "image": IMAGE, "command": ["true"]}]
    }));
    let err = runner
        .run_pod("app", "p", &as_root)
        .expect_err("the image runs as root");
    assert!(matches!(err, RunError::User { .. }), "{err:?}");
    assert!(
        err.to_string().contains("runAsUser"),
        "says how to fix it: {err}"
    );
}

#[test]
fn a_claim_keeps_its_files_across_pods_and_a_read_only_root_is_read_only() {
    let image = TestImage::new();
    let runner = image.runner();
    let with = |command: &str| {
        pod(serde_json::json!({
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "scratch"}}],
            "containers": [{"name": "main", "image": IMAGE, "command": ["sh", "-c", command],
                "securityContext": {"readOnlyRootFilesystem": true},
                "volumeMounts": [{"name": "data", "mountPath": "/backup"}]}]
        }))
    };
    let first = run(&runner, &with("echo kept > /backup/dump"));
    assert!(first.succeeded(), "{first}");
    let second = run(
        &runner,
        &with(
            "cat /backup/dump; if touch /tmp/x 2>/dev/null; then echo root-writable; fi; \
             echo '{\"done\":true}' > /dev/termination-log",
        ),
    );
    assert!(second.succeeded(), "{second}");
    assert_eq!(second.containers[0].stdout, "kept\n");
    assert_eq!(
        second.containers[0].termination_message,
        "{\"done\":true}\n"
    );
}

#[test]
fn a_mount_the_filesystem_cannot_take_is_a_setup_error_not_a_container_failure() {
    let image = TestImage::new();
    let runner = image.runner();
    // A Secret key (a file) mounted over a directory of the image cannot be bind-mounted.
    let spec = pod(serde_json::json!({
        "volumes": [{"name": "creds", "secret": {"secretName": "creds"}}],
        "containers": [{"name": "main", "image": IMAGE, "command": ["true"],
            "volumeMounts": [{"name": "creds", "mountPath": "/usr/local/bin", "subPath": "password"}]}]
    }));
    let err = runner
        .run_pod("app", "p", &spec)
        .expect_err("the mount cannot be set up");
    assert!(
        matches!(&err, RunError::Sandbox { container: Some(c), .. } if c == "main"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("/usr/local/bin"),
        "names the mount: {err}"
    );
}
