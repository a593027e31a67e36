//! A pod's volumes, materialised as directories the sandbox bind-mounts.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, lchown};
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{KeyToPath, Volume};

use super::{Objects, RunError, io_error};

/// Mode of Secret and ConfigMap files when the volume sets no `defaultMode`.
const DEFAULT_FILE_MODE: u32 = 0o644;

/// One prepared volume.
#[derive(Debug, Clone)]
pub(super) struct Prepared {
    /// Where its content lives on this machine.
    pub host_dir: PathBuf,
    /// Secret and ConfigMap volumes are always mounted read-only, whatever the mount says.
    pub always_read_only: bool,
    /// Claims live outside the pod directory and are bind-mounted into it inside the sandbox.
    pub claim: bool,
}

/// Writes every volume of the pod below `dir` (claims: below `claims`, shared by all pods of the
/// runner, like a PersistentVolumeClaim outlives its pods).
pub(super) fn prepare(
    volumes: &[Volume],
    namespace: &str,
    objects: &Objects,
    dir: &Path,
    claims: &dyn Fn(&str) -> Result<PathBuf, RunError>,
    fs_group: Option<u32>,
) -> Result<BTreeMap<String, Prepared>, RunError> {
    let mut out = BTreeMap::new();
    for volume in volumes {
        let name = &volume.name;
        let host_dir = dir.join(name);
        let used_by = || format!("volume {name:?}");
        let prepared = if let Some(secret) = &volume.secret {
            let secret_name = secret.secret_name.clone().unwrap_or_default();
            let data = match objects.secret(namespace, &secret_name) {
                Some(data) => Some(data),
                None if secret.optional.unwrap_or(false) => None,
                None => {
                    return Err(RunError::SecretNotFound {
                        namespace: namespace.to_owned(),
                        name: secret_name,
                        used_by: used_by(),
                    });
                }
            };
            mkdir(&host_dir, 0o755)?;
            if let Some(data) = data {
                write_keys(
                    &host_dir,
                    data,
                    secret.items.as_deref(),
                    secret.default_mode,
                    &|key| RunError::SecretKeyNotFound {
                        namespace: namespace.to_owned(),
                        name: secret_name.clone(),
                        key: key.to_owned(),
                        used_by: used_by(),
                    },
                )?;
            }
            Prepared {
                host_dir,
                always_read_only: true,
                claim: false,
            }
        } else if let Some(config_map) = &volume.config_map {
            let data = match objects.config_map(namespace, &config_map.name) {
                Some(data) => Some(data),
                None if config_map.optional.unwrap_or(false) => None,
                None => {
                    return Err(RunError::ConfigMapNotFound {
                        namespace: namespace.to_owned(),
                        name: config_map.name.clone(),
                        used_by: used_by(),
                    });
                }
            };
            mkdir(&host_dir, 0o755)?;
            if let Some(data) = data {
                write_keys(
                    &host_dir,
                    data,
                    config_map.items.as_deref(),
                    config_map.default_mode,
                    &|key| RunError::ConfigMapKeyNotFound {
                        namespace: namespace.to_owned(),
                        name: config_map.name.clone(),
                        key: key.to_owned(),
                        used_by: used_by(),
                    },
                )?;
            }
            Prepared {
                host_dir,
                always_read_only: true,
                claim: false,
            }
        } else if volume.empty_dir.is_some() {
            // The kubelet creates emptyDir world-writable.
            mkdir(&host_dir, 0o777)?;
            Prepared {
                host_dir,
                always_read_only: false,
                claim: false,
            }
        } else if let Some(pvc) = &volume.persistent_volume_claim {
            mkdir(&host_dir, 0o755)?;
            Prepared {
                host_dir: claims(&pvc.claim_name)?,
                always_read_only: pvc.read_only.unwrap_or(false),
                claim: true,
            }
        } else {
            return Err(RunError::Unsupported {
                what: used_by(),
                detail: "only secret, configMap, emptyDir and persistentVolumeClaim volumes are \
                         emulated by the pod runner"
                    .into(),
            });
        };
        if let Some(gid) = fs_group {
            set_ownership(&prepared.host_dir, gid, prepared.always_read_only)?;
        }
        out.insert(name.clone(), prepared);
    }
    Ok(out)
}

fn write_keys(
    dir: &Path,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
    missing: &dyn Fn(&str) -> RunError,
) -> Result<(), RunError> {
    let default_mode = default_mode.map_or(DEFAULT_FILE_MODE, mode_bits);
    let files: Vec<(&str, String, u32)> = match items {
        Some(items) => items
            .iter()
            .map(|item| {
                let mode = item.mode.map_or(default_mode, mode_bits);
                (item.key.as_str(), item.path.clone(), mode)
            })
            .collect(),
        None => data
            .keys()
            .map(|k| (k.as_str(), k.clone(), default_mode))
            .collect(),
    };
    for (key, path, mode) in files {
        let value = data.get(key).ok_or_else(|| missing(key))?;
        let relative = relative_path(&path, "items[].path")?;
        let file = dir.join(relative);
        if let Some(parent) = file.parent() {
            fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
        }
        fs::write(&file, value).map_err(|e| io_error(&file, e))?;
        fs::set_permissions(&file, fs::Permissions::from_mode(mode))
            .map_err(|e| io_error(&file, e))?;
    }
    Ok(())
}

fn mode_bits(mode: i32) -> u32 {
    u32::try_from(mode).unwrap_or(DEFAULT_FILE_MODE) & 0o777
}

fn mkdir(dir: &Path, mode: u32) -> Result<(), RunError> {
    fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode)).map_err(|e| io_error(dir, e))
}

/// A path inside a volume: relative and without `..`, as the API server requires.
pub(super) fn relative_path<'a>(path: &'a str, field: &str) -> Result<&'a Path, RunError> {
    let p = Path::new(path);
    let ok = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(p)
    } else {
        Err(RunError::InvalidField {
            field: field.to_owned(),
            value: path.to_owned(),
            reason: "must be relative and must not contain `..`".into(),
        })
    }
}

/// What the kubelet does for `fsGroup`: the group owns everything, group members may read (and,
/// for writable volumes, write), and new files inherit the group.
fn set_ownership(dir: &Path, gid: u32, read_only: bool) -> Result<(), RunError> {
    let walk = |path: &Path| -> Result<(), RunError> {
        lchown(path, None, Some(gid)).map_err(|e| io_error(path, e))?;
        let meta = fs::symlink_metadata(path).map_err(|e| io_error(path, e))?;
        if meta.file_type().is_symlink() {
            return Ok(());
        }
        let mut mode = meta.permissions().mode();
        mode |= if read_only { 0o440 } else { 0o660 };
        if meta.is_dir() {
            mode |= 0o2110;
        }
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| io_error(path, e))
    };
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        walk(&path)?;
        if path.is_dir() && !fs::symlink_metadata(&path).is_ok_and(|m| m.is_symlink()) {
            for entry in fs::read_dir(&path).map_err(|e| io_error(&path, e))? {
                stack.push(entry.map_err(|e| io_error(&path, e))?.path());
            }
        }
    }
    Ok(())
}
