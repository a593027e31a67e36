//! Constructors on the generated WIT types, so plugin code reads like the contract it fulfils.

use crate::{Diagnostic, PluginError, SecretKeyRef, Severity};

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
}
