//! Constructors on the generated WIT types, so plugin code reads like the contract it fulfils.

use crate::{
    API_VERSION, Capability, Diagnostic, EngineInfo, Image, Instance, PluginError, SecretKeyRef,
    Severity,
};

/// The roles an engine declares an image for, in the order the host lists them.
pub const IMAGE_ROLES: [&str; 3] = ["backup", "commission", "restore"];

impl EngineInfo {
    /// The description of an engine whose Jobs all run one image (with a different entrypoint
    /// per role), which is what the host pulls and polices for every role in [`IMAGE_ROLES`].
    ///
    /// `options_schema` is the JSON Schema of the engine's `spec.options` objects; the API
    /// version is this SDK's, which is what the engine is built against.
    pub fn single_image(
        name: impl Into<String>,
        version: impl Into<String>,
        capabilities: Vec<Capability>,
        image: &str,
        options_schema: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            api_version: API_VERSION.to_string(),
            capabilities,
            images: IMAGE_ROLES
                .into_iter()
                .map(|role| Image {
                    role: role.to_string(),
                    reference: image.to_string(),
                })
                .collect(),
            options_schema: options_schema.into(),
        }
    }
}

impl Diagnostic {
    /// A finding that stops reconciliation. `field` is the dotted path from the resource root,
    /// e.g. `spec.options.schemas[1]`; `message` says what is wrong and how to fix it.
    pub fn error(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            severity: Severity::Error,
            message: message.into(),
        }
    }

    /// A finding the host reports but that does not stop reconciliation.
    pub fn warning(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            severity: Severity::Warning,
            message: message.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl PluginError {
    /// The input cannot be served because of one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![Diagnostic::error(field, message)])
    }

    /// `Err(Invalid)` with the errors among `diagnostics`, or `Ok` when there are none.
    /// Warnings are dropped: they are the business of `validate`.
    pub fn from_diagnostics(diagnostics: Vec<Diagnostic>) -> Result<(), Self> {
        let errors: Vec<Diagnostic> = diagnostics
            .into_iter()
            .filter(Diagnostic::is_error)
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Self::Invalid(errors))
        }
    }

    /// [`from_diagnostics`](Self::from_diagnostics) for findings about the DbInstance met while
    /// serving a call for one of its Databases: the host reports them on the Database, so each
    /// message starts with `DbInstance <name>: ` to say which object needs the fix.
    pub fn from_instance_diagnostics(
        instance: &Instance,
        diagnostics: Vec<Diagnostic>,
    ) -> Result<(), Self> {
        Self::from_diagnostics(
            diagnostics
                .into_iter()
                .map(|mut d| {
                    d.message = format!("DbInstance {}: {}", instance.name, d.message);
                    d
                })
                .collect(),
        )
    }
}

impl SecretKeyRef {
    pub fn new(name: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            key: key.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_make_input_invalid() {
        assert_eq!(
            PluginError::from_diagnostics(vec![Diagnostic::warning("spec.a", "odd")]),
            Ok(())
        );
        let err = PluginError::from_diagnostics(vec![
            Diagnostic::warning("spec.a", "odd"),
            Diagnostic::error("spec.b", "wrong"),
        ])
        .expect_err("one error");
        assert_eq!(
            err,
            PluginError::Invalid(vec![Diagnostic::error("spec.b", "wrong")])
        );
    }

    #[test]
    fn instance_findings_name_the_instance_and_keep_only_errors() {
        let instance = crate::testing::instance();
        let err = PluginError::from_instance_diagnostics(
            &instance,
            vec![
                Diagnostic::warning("spec.options.a", "odd"),
                Diagnostic::error("spec.options.b", "wrong"),
            ],
        )
        .expect_err("one error");
        assert_eq!(
            err,
            PluginError::Invalid(vec![Diagnostic::error(
                "spec.options.b",
                "DbInstance pg-main: wrong"
            )])
        );
        assert_eq!(
            PluginError::from_instance_diagnostics(&instance, Vec::new()),
            Ok(())
        );
    }

    #[test]
    fn a_single_image_engine_names_its_image_for_every_role() {
        let info = EngineInfo::single_image(
            "kv",
            "1.2.3",
            vec![Capability::Backup],
            "example.org/kv-tools:1.2.3",
            "{}",
        );
        assert_eq!(info.api_version, API_VERSION);
        let images: Vec<(&str, &str)> = info
            .images
            .iter()
            .map(|i| (i.role.as_str(), i.reference.as_str()))
            .collect();
        assert_eq!(
            images,
            [
                ("backup", "example.org/kv-tools:1.2.3"),
                ("commission", "example.org/kv-tools:1.2.3"),
                ("restore", "example.org/kv-tools:1.2.3")
            ]
        );
        assert_eq!(info.capabilities, [Capability::Backup]);
        assert_eq!((info.name.as_str(), info.version.as_str()), ("kv", "1.2.3"));
    }
}
