//! Guest SDK for db-operator engine plugins.
//!
//! An engine plugin is a `wasm32-wasip2` component that turns facts about a database server and
//! a database into Kubernetes pod specs. This crate hides the WIT bindings behind the [`Engine`]
//! trait and gives the helpers every engine needs: pod-spec building blocks and the standard
//! one-container Job pod with its password file, admin Secret and `/tmp` ([`pod`]), the
//! rclone environment for an S3 target ([`s3`]), object-key layout and name shortening
//! ([`names`]), options parsing with field paths ([`options`]), snapshot time handling
//! ([`snapshot`]), host logging ([`log`]) and, natively, request builders for unit tests
//! ([`testing`]).
//!
//! ```
//! use dbo_plugin_sdk::{CredentialLayout, Database, Engine, EngineInfo, Instance, PluginError};
//!
//! pub struct Kv;
//!
//! impl Engine for Kv {
//!     fn describe() -> EngineInfo {
//!         // No capabilities yet: the host only asks for credentials layouts.
//!         EngineInfo::single_image("kv", "0.1.0", Vec::new(), "example.org/kv-tools:0.1.0", "{}")
//!     }
//!
//!     fn credentials(
//!         _instance: &Instance,
//!         database: &Database,
//!     ) -> Result<CredentialLayout, PluginError> {
//!         Ok(CredentialLayout {
//!             database_name: database.name.clone(),
//!             user_name: database.name.clone(),
//!             database_key: "DB".into(),
//!             user_key: "USER".into(),
//!             password_key: "PASSWORD".into(),
//!             password_length: 24,
//!             templates: Vec::new(),
//!         })
//!     }
//! }
//!
//! // Exports `Kv` as the component's engine when built for wasm32-wasip2.
//! dbo_plugin_sdk::export_engine!(Kv);
//! # fn main() {
//! #     let layout = Kv::credentials(&dbo_plugin_sdk::testing::instance(), &dbo_plugin_sdk::testing::database());
//! #     assert_eq!(layout.map(|l| l.database_name), Ok("orders".to_string()));
//! # }
//! ```
//!
//! The crate also builds natively, so a plugin's unit tests (and the host's benchmarks) call the
//! `Engine` implementation directly; [`export_engine!`] only expands on `wasm32`.

/// Generated WIT bindings. Plugin authors use the re-exports at the crate root instead.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/v0.1",
        world: "engine-plugin",
        pub_export_macro: true,
        default_bindings_module: "dbo_plugin_sdk::bindings",
        // `secret-key-ref` is used by no function, but it is the natural argument of
        // `pod::secret_env`.
        generate_unused_types: true,
        additional_derives: [PartialEq, Eq, serde::Serialize, serde::Deserialize],
        // The same JSON shape as the host's internal model (`dbo-engine`), so native callers
        // can convert between the two with serde.
        additional_type_attributes: {
            "kci:engine/types@0.1.0/severity": [#[serde(rename_all = "kebab-case")]],
            "kci:engine/types@0.1.0/capability": [#[serde(rename_all = "kebab-case")]],
            "kci:engine/types@0.1.0/backend-kind": [#[serde(rename_all = "kebab-case")]],
            "kci:engine/host@0.1.0/level": [#[serde(rename_all = "kebab-case")]],
            "kci:engine/types@0.1.0/diagnostic": [#[serde(rename_all = "camelCase")]],
            "kci:engine/types@0.1.0/image": [#[serde(rename_all = "camelCase")]],
            "kci:engine/types@0.1.0/engine-info": [#[serde(rename_all = "camelCase")]],
            "kci:engine/types@0.1.0/secret-key-ref": [#[serde(rename_all = "camelCase")]],
            "kci:engine/types@0.1.0/instance": [#[serde(rename_all = "camelCase")]],
            "kci:engine/types@0.1.0/schema-ref": [#[serde(rename_all = "camelCase")]],
            "kci:engine/types@0.1.0/database": [#[serde(rename_all = "camelCase")]],
            "kci:engine/types@0.1.0/credential-refs": [#[serde(rename_all = "camelCase")]],
            "kci:engine/types@0.1.0/credential-layout": [#[serde(rename_all = "camelCase")]],
            "kci:engine/types@0.1.0/access-key-secret": [#[serde(rename_all = "camelCase")]],
            "kci:engine/types@0.1.0/s3-auth": [#[serde(rename_all = "camelCase")]],
            "kci:engine/types@0.1.0/s3-target": [#[serde(rename_all = "camelCase")]],
            "kci:engine/types@0.1.0/storage": [#[serde(rename_all = "camelCase")]],
            "kci:engine/types@0.1.0/admin-secret": [#[serde(rename_all = "camelCase")]],
            "kci:engine/types@0.1.0/backup-request": [#[serde(rename_all = "camelCase")]],
            "kci:engine/types@0.1.0/commission-request": [#[serde(rename_all = "camelCase")]],
            "kci:engine/types@0.1.0/snapshot": [#[serde(rename_all = "camelCase")]],
            "kci:engine/types@0.1.0/restore-request": [#[serde(rename_all = "camelCase")]],
            "kci:engine/types@0.1.0/job-spec": [#[serde(rename_all = "camelCase")]],
            "kci:engine/types@0.1.0/plugin-error": [#[serde(rename_all = "camelCase")]],
        },
    });
}

pub mod log;
pub mod names;
pub mod options;
pub mod pod;
pub mod s3;
pub mod snapshot;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

mod types;

pub use bindings::kci::engine::types::{
    AccessKeySecret, AdminSecret, BackendKind, BackupRequest, Capability, CommissionRequest,
    CredentialLayout, CredentialRefs, Database, Diagnostic, EngineInfo, Image, Instance, JobSpec,
    PluginError, RestoreRequest, S3Auth, S3Target, SchemaRef, SecretKeyRef, Severity, Snapshot,
    Storage,
};
pub use k8s_openapi;
pub use pod::job_spec;
pub use types::IMAGE_ROLES;

/// The contract version this SDK implements; `describe` must report it as `api-version`.
pub const API_VERSION: &str = "0.1.0";

/// A database engine, as a plugin author writes it.
///
/// Every function is pure: it sees only its arguments, performs no I/O and never sees secret
/// values (only Secret names and keys). The host calls only what [`EngineInfo::capabilities`]
/// declares; the defaults answer for an engine without the optional capabilities.
pub trait Engine {
    /// Name, version, capabilities, images and options schema of the engine.
    fn describe() -> EngineInfo;

    /// Engine-specific checks. `database` is `None` when the host validates a `DbInstance` on
    /// its own; then every diagnostic refers to the DbInstance, otherwise to the Database.
    fn validate(instance: &Instance, database: Option<&Database>) -> Vec<Diagnostic> {
        let _ = (instance, database);
        Vec::new()
    }

    /// The credentials Secret layout: key names, server-side names and connection templates.
    fn credentials(
        instance: &Instance,
        database: &Database,
    ) -> Result<CredentialLayout, PluginError>;

    /// The pod of the backup CronJob.
    fn backup(request: &BackupRequest) -> Result<JobSpec, PluginError> {
        let _ = request;
        Err(unsupported::<Self>("backups"))
    }

    /// The commissioning Job, or `None` when the engine needs none for this database.
    fn commission(request: &CommissionRequest) -> Result<Option<JobSpec>, PluginError> {
        let _ = request;
        Ok(None)
    }

    /// The restore Job.
    fn restore(request: &RestoreRequest) -> Result<JobSpec, PluginError> {
        let _ = request;
        Err(unsupported::<Self>("restores"))
    }
}

fn unsupported<E: Engine + ?Sized>(what: &str) -> PluginError {
    PluginError::Unsupported(format!(
        "the {} engine does not support {what}",
        E::describe().name
    ))
}

/// Exports an [`Engine`] implementation as the component's `kci:engine/engine` interface.
///
/// Expands to nothing when not compiling for `wasm32`, so a plugin crate can also be linked
/// natively (unit tests, host benchmarks) next to other plugins without symbol clashes.
#[macro_export]
macro_rules! export_engine {
    ($engine:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type DboExportedEngine = $crate::__private::Exported<$engine>;
    $crate::bindings::export!(DboExportedEngine with_types_in $crate::bindings);
        };
    };
}

#[doc(hidden)]
pub mod __private {
    use std::marker::PhantomData;

    use crate::bindings::exports::kci::engine::engine::Guest;
    use crate::{
        BackupRequest, CommissionRequest, CredentialLayout, Database, Diagnostic, Engine,
        EngineInfo, Instance, JobSpec, PluginError, RestoreRequest,
    };

    /// Adapts an [`Engine`] to the generated `Guest` trait (owned arguments, no `&`).
    pub struct Exported<E>(PhantomData<E>);

    impl<E: Engine> Guest for Exported<E> {
        fn describe() -> EngineInfo {
            E::describe()
        }

        fn validate(instance: Instance, database: Option<Database>) -> Vec<Diagnostic> {
            E::validate(&instance, database.as_ref())
        }

        fn credentials(
            instance: Instance,
            database: Database,
        ) -> Result<CredentialLayout, PluginError> {
            E::credentials(&instance, &database)
        }

        fn backup(request: BackupRequest) -> Result<JobSpec, PluginError> {
            E::backup(&request)
        }

        fn commission(request: CommissionRequest) -> Result<Option<JobSpec>, PluginError> {
            E::commission(&request)
        }

        fn restore(request: RestoreRequest) -> Result<JobSpec, PluginError> {
            E::restore(&request)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::__private::Exported;
    use super::bindings::exports::kci::engine::engine::Guest;
    use super::*;

    /// An engine that implements only the required functions.
    struct Minimal;

    impl Engine for Minimal {
        fn describe() -> EngineInfo {
            EngineInfo {
                name: "minimal".into(),
                version: "1.0.0".into(),
                api_version: API_VERSION.into(),
                capabilities: Vec::new(),
                images: Vec::new(),
                options_schema: "{}".into(),
            }
        }

        fn credentials(
            _instance: &Instance,
            database: &Database,
        ) -> Result<CredentialLayout, PluginError> {
            Ok(CredentialLayout {
                database_name: database.name.clone(),
                user_name: database.name.clone(),
                database_key: "DB".into(),
                user_key: "USER".into(),
                password_key: "PASSWORD".into(),
                password_length: 16,
                templates: Vec::new(),
            })
        }
    }

    #[test]
    fn optional_capabilities_default_to_unsupported_naming_the_engine() {
        let err = <Exported<Minimal> as Guest>::backup(testing::backup_request())
            .expect_err("backup is not implemented");
        assert_eq!(
            err,
            PluginError::Unsupported("the minimal engine does not support backups".into())
        );
        let err = <Exported<Minimal> as Guest>::restore(testing::restore_request(Snapshot::Latest))
            .expect_err("restore is not implemented");
        assert!(matches!(err, PluginError::Unsupported(m) if m.contains("restores")));
        assert_eq!(
            <Exported<Minimal> as Guest>::commission(testing::commission_request()),
            Ok(None)
        );
        assert!(<Exported<Minimal> as Guest>::validate(testing::instance(), None).is_empty());
    }

    #[test]
    fn the_adapter_passes_arguments_through() {
        let layout =
            <Exported<Minimal> as Guest>::credentials(testing::instance(), testing::database())
                .expect("credentials");
        assert_eq!(layout.database_name, testing::database().name);
    }

    #[test]
    fn wit_types_serialise_like_the_host_model() {
        let storage = Storage::S3(S3Target {
            bucket: "b".into(),
            prefix: String::new(),
            region: None,
            endpoint: None,
            auth: S3Auth::AccessKey(AccessKeySecret {
                name: "s3".into(),
                access_key_id_key: "id".into(),
                secret_access_key_key: "secret".into(),
            }),
        });
        let json = serde_json::to_value(&storage).expect("serialise");
        assert_eq!(
            json,
            serde_json::json!({"s3": {"bucket": "b", "prefix": "", "region": null, "endpoint": null,
                "auth": {"accessKey": {"name": "s3", "accessKeyIdKey": "id", "secretAccessKeyKey": "secret"}}}})
        );
        assert_eq!(
            serde_json::to_value(Capability::SchemaRollForward).expect("serialise"),
            "schema-roll-forward"
        );
        assert_eq!(
            serde_json::to_value(Snapshot::PointInTime("t".into())).expect("serialise"),
            serde_json::json!({"pointInTime": "t"})
        );
    }
}
