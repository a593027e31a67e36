//! A container's environment, resolved the way the kubelet resolves it.

use k8s_openapi::api::core::v1::{Container, EnvVarSource};

use super::{Objects, PodIdentity, RunError};

/// The variables the PodSpec declares for `container`: `envFrom` first, then `env` (a later
/// definition of a name replaces an earlier one, keeping its position), with `$(NAME)` references
/// expanded against what is defined before them, exactly as the kubelet does.
pub(super) fn declared(
    container: &Container,
    pod: &PodIdentity<'_>,
    objects: &Objects,
) -> Result<Vec<(String, String)>, RunError> {
    let mut vars: Vec<(String, String)> = Vec::new();
    let ns = pod.namespace;

    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.as_deref().unwrap_or_default();
        let (data, what) = if let Some(secret) = &source.secret_ref {
            let optional = secret.optional.unwrap_or(false);
            match objects.secret(ns, &secret.name) {
                Some(data) => (data, format!("Secret {ns}/{}", secret.name)),
                None if optional => continue,
                None => {
                    return Err(RunError::SecretNotFound {
                        namespace: ns.to_owned(),
                        name: secret.name.clone(),
                        used_by: format!("envFrom of container {:?}", container.name),
                    });
                }
            }
        } else if let Some(config_map) = &source.config_map_ref {
            let optional = config_map.optional.unwrap_or(false);
            match objects.config_map(ns, &config_map.name) {
                Some(data) => (data, format!("ConfigMap {ns}/{}", config_map.name)),
                None if optional => continue,
                None => {
                    return Err(RunError::ConfigMapNotFound {
                        namespace: ns.to_owned(),
                        name: config_map.name.clone(),
                        used_by: format!("envFrom of container {:?}", container.name),
                    });
                }
            }
        } else {
            continue;
        };
        for (key, value) in data {
            // The kubelet skips keys that cannot be variable names (and reports an Event).
            if key.is_empty() || key.contains('=') {
                continue;
            }
            let value = utf8(value, || format!("key {key:?} of {what} (envFrom)"))?;
            set(&mut vars, format!("{prefix}{key}"), value);
        }
    }

    for var in container.env.iter().flatten() {
        let used_by = || format!("env {} of container {:?}", var.name, container.name);
        let value = match (&var.value, &var.value_from) {
            (_, Some(from)) => match resolve(from, pod, objects, &used_by)? {
                Some(value) => value,
                // An optional reference to something missing leaves the variable unset.
                None => continue,
            },
            (Some(value), None) => expand(value, &vars),
            (None, None) => String::new(),
        };
        set(&mut vars, var.name.clone(), value);
    }
    Ok(vars)
}

fn resolve(
    from: &EnvVarSource,
    pod: &PodIdentity<'_>,
    objects: &Objects,
    used_by: &dyn Fn() -> String,
) -> Result<Option<String>, RunError> {
    let ns = pod.namespace;
    if let Some(sel) = &from.secret_key_ref {
        let optional = sel.optional.unwrap_or(false);
        let Some(data) = objects.secret(ns, &sel.name) else {
            if optional {
                return Ok(None);
            }
            return Err(RunError::SecretNotFound {
                namespace: ns.to_owned(),
                name: sel.name.clone(),
                used_by: used_by(),
            });
        };
        let Some(value) = data.get(&sel.key) else {
            if optional {
                return Ok(None);
            }
            return Err(RunError::SecretKeyNotFound {
                namespace: ns.to_owned(),
                name: sel.name.clone(),
                key: sel.key.clone(),
                used_by: used_by(),
            });
        };
        return utf8(value, used_by).map(Some);
    }
    if let Some(sel) = &from.config_map_key_ref {
        let optional = sel.optional.unwrap_or(false);
        let Some(data) = objects.config_map(ns, &sel.name) else {
            if optional {
                return Ok(None);
            }
            return Err(RunError::ConfigMapNotFound {
                namespace: ns.to_owned(),
                name: sel.name.clone(),
                used_by: used_by(),
            });
        };
        let Some(value) = data.get(&sel.key) else {
            if optional {
                return Ok(None);
            }
            return Err(RunError::ConfigMapKeyNotFound {
                namespace: ns.to_owned(),
                name: sel.name.clone(),
                key: sel.key.clone(),
                used_by: used_by(),
            });
        };
        return utf8(value, used_by).map(Some);
    }
    if let Some(field) = &from.field_ref {
        let value = match field.field_path.as_str() {
            "metadata.name" => pod.name.to_owned(),
            "metadata.namespace" => pod.namespace.to_owned(),
            "spec.serviceAccountName" => pod.service_account.to_owned(),
            // Pods run on this machine, on its loopback address.
            "spec.nodeName" => "localhost".to_owned(),
            "status.podIP" | "status.hostIP" => "127.0.0.1".to_owned(),
            other => {
                return Err(RunError::Unsupported {
                    what: used_by(),
                    detail: format!("fieldRef {other:?} is not emulated by the pod runner"),
                });
            }
        };
        return Ok(Some(value));
    }
    Err(RunError::Unsupported {
        what: used_by(),
        detail: "only secretKeyRef, configMapKeyRef and fieldRef sources are emulated".into(),
    })
}

fn utf8(bytes: &[u8], what: impl FnOnce() -> String) -> Result<String, RunError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| RunError::Unsupported {
        what: what(),
        detail: "the value is not UTF-8 text; mount it as a file instead".into(),
    })
}

/// Sets `name`, replacing an earlier definition in place.
pub(super) fn set(vars: &mut Vec<(String, String)>, name: String, value: String) {
    match vars.iter_mut().find(|(k, _)| *k == name) {
        Some(slot) => slot.1 = value,
        None => vars.push((name, value)),
    }
}

/// The kubelet's `$(NAME)` expansion: a defined name is replaced, an undefined reference stays as
/// written, and `$$` is a literal `$`.
pub(super) fn expand(text: &str, vars: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        if let Some(after) = tail.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(inner) = tail.strip_prefix('(') {
            match inner.find(')') {
                Some(close) => {
                    let name = &inner[..close];
                    match vars.iter().rev().find(|(k, _)| k == name) {
                        Some((_, value)) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn references_expand_like_the_kubelet() {
        let defined = vars(&[("HOST", "db"), ("PORT", "5432")]);
        assert_eq!(expand("$(HOST):$(PORT)", &defined), "db:5432");
        assert_eq!(expand("$(MISSING) stays", &defined), "$(MISSING) stays");
        assert_eq!(
            expand("$$(HOST) is escaped", &defined),
            "$(HOST) is escaped"
        );
        assert_eq!(expand("plain $HOST and $", &defined), "plain $HOST and $");
        assert_eq!(expand("$(unclosed", &defined), "$(unclosed");
    }
}
