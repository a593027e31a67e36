//! What a plugin's pod spec may contain. A plugin is untrusted code: it decides commands and
//! env, the host decides everything that touches the node, the API or other tenants' data.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, PodSpec};

/// Exceptions an administrator may grant. Everything is denied by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub allow_privileged: bool,
    pub allow_host_namespaces: bool,
    pub allow_host_path: bool,
}

/// Checks `pod` against `policy`. `secrets` are the only Secret names the pod may reference
/// (the host passed them in the request); anything else could read another workload's Secret.
/// Returns every violation, each phrased so a plugin author knows what to change.
pub fn check(pod: &PodSpec, policy: &Policy, secrets: &BTreeSet<String>) -> Vec<String> {
    let mut v = Vec::new();

    if !policy.allow_host_namespaces {
        for (set, what) in [
            (pod.host_network, "hostNetwork"),
            (pod.host_pid, "hostPID"),
            (pod.host_ipc, "hostIPC"),
        ] {
            if set == Some(true) {
                v.push(format!("{what} is not allowed"));
            }
        }
    }
    if pod.service_account_name.is_some() || pod.service_account.is_some() {
        v.push("serviceAccountName is chosen by the host, not the plugin".into());
    }
    if pod.node_name.is_some() {
        v.push("nodeName is not allowed".into());
    }
    if pod.containers.is_empty() {
        v.push("the pod spec has no containers".into());
    }

    for vol in pod.volumes.iter().flatten() {
        if vol.host_path.is_some() && !policy.allow_host_path {
            v.push(format!(
                "volume {:?}: hostPath volumes are not allowed",
                vol.name
            ));
        }
        if let Some(s) = &vol.secret {
            check_secret(
                &mut v,
                secrets,
                s.secret_name.as_deref(),
                &format!("volume {:?}", vol.name),
            );
        }
        if let Some(p) = &vol.projected {
            for src in p.sources.iter().flatten() {
                if let Some(s) = &src.secret {
                    check_secret(
                        &mut v,
                        secrets,
                        Some(&s.name),
                        &format!("volume {:?}", vol.name),
                    );
                }
                if src.service_account_token.is_some() {
                    v.push(format!(
                        "volume {:?}: service account tokens are not allowed",
                        vol.name
                    ));
                }
            }
        }
        let allowed_kind = vol.secret.is_some()
            || vol.config_map.is_some()
            || vol.empty_dir.is_some()
            || vol.projected.is_some()
            || vol.downward_api.is_some()
            || (vol.host_path.is_some() && policy.allow_host_path);
        if !allowed_kind && vol.host_path.is_none() {
            v.push(format!(
                "volume {:?}: only secret, configMap, emptyDir, projected and downwardAPI volumes may come from a plugin",
                vol.name
            ));
        }
    }

    let all = pod
        .init_containers
        .iter()
        .flatten()
        .chain(pod.containers.iter());
    for c in all {
        check_container(&mut v, c, policy, secrets);
    }
    if pod
        .ephemeral_containers
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        v.push("ephemeralContainers are not allowed".into());
    }
    v
}

fn check_secret(v: &mut Vec<String>, secrets: &BTreeSet<String>, name: Option<&str>, at: &str) {
    match name {
        Some(n) if secrets.contains(n) => {}
        Some(n) => v.push(format!(
            "{at}: Secret {n:?} was not given to the plugin; it may only use {}",
            list(secrets)
        )),
        None => v.push(format!("{at}: a Secret reference needs a name")),
    }
}

fn check_container(
    v: &mut Vec<String>,
    c: &Container,
    policy: &Policy,
    secrets: &BTreeSet<String>,
) {
    let at = format!("container {:?}", c.name);
    if let Some(sc) = &c.security_context {
        if sc.privileged == Some(true) && !policy.allow_privileged {
            v.push(format!("{at}: privileged containers are not allowed"));
        }
        if sc.allow_privilege_escalation == Some(true) && !policy.allow_privileged {
            v.push(format!("{at}: allowPrivilegeEscalation is not allowed"));
        }
        if let Some(caps) = &sc.capabilities
            && caps.add.as_ref().is_some_and(|a| !a.is_empty())
            && !policy.allow_privileged
        {
            v.push(format!("{at}: adding Linux capabilities is not allowed"));
        }
    }
    for p in c.ports.iter().flatten() {
        if p.host_port.is_some() && !policy.allow_host_namespaces {
            v.push(format!("{at}: hostPort is not allowed"));
        }
    }
    for e in c.env.iter().flatten() {
        if let Some(from) = &e.value_from
            && let Some(r) = &from.secret_key_ref
        {
            check_secret(v, secrets, Some(&r.name), &format!("{at} env {:?}", e.name));
        }
    }
    for e in c.env_from.iter().flatten() {
        if let Some(r) = &e.secret_ref {
            check_secret(v, secrets, Some(&r.name), &format!("{at} envFrom"));
        }
    }
}

fn list(secrets: &BTreeSet<String>) -> String {
    if secrets.is_empty() {
        "none".into()
    } else {
        secrets
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).expect("test pod spec")
    }

    fn allowed() -> BTreeSet<String> {
        ["creds".to_string()].into()
    }

    #[test]
    fn a_plain_pod_passes() {
        let p = pod(json!({"containers": [{"name": "c", "image": "i",
            "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}}]}],
            "volumes": [{"name": "v", "secret": {"secretName": "creds"}}, {"name": "t", "emptyDir": {}}]}));
        assert_eq!(
            check(&p, &Policy::default(), &allowed()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn privileged_host_namespaces_and_host_path_are_refused() {
        let p = pod(json!({"hostNetwork": true, "hostPID": true,
            "containers": [{"name": "c", "image": "i", "securityContext": {"privileged": true}}],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}]}));
        let v = check(&p, &Policy::default(), &allowed());
        assert!(
            v.iter().any(|m| m.contains("privileged containers")),
            "{v:?}"
        );
        assert!(v.iter().any(|m| m.contains("hostNetwork")), "{v:?}");
        assert!(v.iter().any(|m| m.contains("hostPID")), "{v:?}");
        assert!(v.iter().any(|m| m.contains("hostPath")), "{v:?}");
        let lenient = Policy {
            allow_privileged: true,
            allow_host_namespaces: true,
            allow_host_path: true,
        };
        assert_eq!(check(&p, &lenient, &allowed()), Vec::<String>::new());
    }

    #[test]
    fn foreign_secrets_and_service_accounts_are_refused() {
        let p = pod(json!({"serviceAccountName": "admin",
            "containers": [{"name": "c", "image": "i",
                "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "other-team", "key": "k"}}}]}],
            "volumes": [{"name": "v", "secret": {"secretName": "kube-system-token"}}]}));
        let v = check(&p, &Policy::default(), &allowed());
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(
            v.iter().any(|m| m.contains("\"other-team\" was not given")),
            "{v:?}"
        );
        assert!(v.iter().any(|m| m.contains("serviceAccountName")), "{v:?}");
    }

    #[test]
    fn unknown_volume_kinds_are_refused() {
        let p = pod(json!({"containers": [{"name": "c", "image": "i"}],
            "volumes": [{"name": "n", "nfs": {"server": "s", "path": "/"}}]}));
        let v = check(&p, &Policy::default(), &allowed());
        assert!(v[0].contains("only secret"), "{v:?}");
    }
}
