//! Schema pieces the derive cannot express, and the last touches on the generated CRDs.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use schemars::{Schema, SchemaGenerator, json_schema};

/// A 5-field cron schedule or one of the macros Kubernetes CronJobs accept; empty is allowed
/// because manifests of the original operator carry `cron: ""` with `enable: false`.
/// `validate_database` checks the fields themselves.
pub(crate) const CRON_PATTERN: &str =
    r"^\s*(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|\S+(\s+\S+){4})?\s*$";

/// An engine-specific options object: any keys, kept by the API server, checked by the plugin.
pub(crate) fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// A TCP port. Port 0 means "any port" to a socket API, never a server address.
pub(crate) fn port(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "integer",
        "format": "int32",
        "minimum": 1,
        "maximum": 65535,
    })
}

/// Rewrites what the API server would warn about in schemas schemars derives.
///
/// Kubernetes knows the integer formats `int32` and `int64` only and warns "unrecognized format"
/// for schemars' `uint16`, `uint32`, ...; the bounds schemars emits with them stay.
pub(crate) fn finish(crd: &mut CustomResourceDefinition) {
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            walk(schema, &mut |node| {
                if let Some(format) = node.format.as_deref() {
                    let known = match format {
                        "uint8" | "uint16" | "int8" | "int16" => Some("int32"),
                        "uint32" | "uint64" | "uint" => Some("int64"),
                        _ => None,
                    };
                    if let Some(known) = known {
                        node.format = Some(known.to_owned());
                    }
                }
            });
        }
    }
}

/// Calls `visit` on `schema` and every schema nested in it.
pub(crate) fn walk(schema: &mut JSONSchemaProps, visit: &mut impl FnMut(&mut JSONSchemaProps)) {
    visit(schema);
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        walk(child, visit);
    }
    match schema.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(item)) => walk(item, visit),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => {
            for item in items {
                walk(item, visit);
            }
        }
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(extra)) = schema.additional_properties.as_mut() {
        walk(extra, visit);
    }
    for list in [&mut schema.one_of, &mut schema.any_of, &mut schema.all_of] {
        for child in list.iter_mut().flatten() {
            walk(child, visit);
        }
    }
    if let Some(not) = schema.not.as_mut() {
        walk(not, visit);
    }
}
