//! The Neo4j engine of db-operator (being written: it declares no capabilities yet, so the
//! host calls nothing but `describe` and `credentials`).

use dbo_plugin_sdk::{
    API_VERSION, CredentialLayout, Database, Engine, EngineInfo, Instance, PluginError,
};

pub struct Neo4j;

impl Engine for Neo4j {
    fn describe() -> EngineInfo {
        EngineInfo {
            name: "neo4j".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            api_version: API_VERSION.to_string(),
            capabilities: Vec::new(),
            images: Vec::new(),
            options_schema: "{}".to_string(),
        }
    }

    fn credentials(
        _instance: &Instance,
        _database: &Database,
    ) -> Result<CredentialLayout, PluginError> {
        Err(PluginError::Unsupported(
            "the neo4j engine is not finished yet".to_string(),
        ))
    }
}

dbo_plugin_sdk::export_engine!(Neo4j);
