//! The in-tree plugins as `wasm32-wasip2` components, compiled by this crate's build script.
//!
//! Depending on this crate is all it takes to have current `.wasm` files: the build script
//! rebuilds the guests whenever their sources, the SDK or the WIT contract change.

macro_rules! component {
    ($stem:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $stem, ".wasm"))
    };
}

/// The PostgreSQL engine (`dbo-engine-postgres`).
pub const POSTGRES: &[u8] = component!("postgres");
/// The MySQL / MariaDB engine (`dbo-engine-mysql`).
pub const MYSQL: &[u8] = component!("mysql");
/// The MongoDB engine (`dbo-engine-mongodb`).
pub const MONGODB: &[u8] = component!("mongodb");
/// The Elasticsearch / OpenSearch engine (`dbo-engine-elasticsearch`).
pub const ELASTICSEARCH: &[u8] = component!("elasticsearch");
/// The Neo4j engine (`dbo-engine-neo4j`).
pub const NEO4J: &[u8] = component!("neo4j");

/// Test plugins that misbehave in exactly one way in `backup` and answer every other export
/// sanely, for proving the sandbox holds.
pub mod fixtures {
    /// `backup` loops forever.
    pub const ENDLESS_LOOP: &[u8] = component!("endless-loop");
    /// `backup` allocates without bound.
    pub const MEMORY_BOMB: &[u8] = component!("memory-bomb");
    /// `backup` panics.
    pub const PANIC: &[u8] = component!("panic");
    /// Imports `wasi:sockets` (it tries to open a TCP connection).
    pub const FORBIDDEN_IMPORT: &[u8] = component!("forbidden-import");
    /// `backup` returns an 8 MiB pod spec.
    pub const OVERSIZED_OUTPUT: &[u8] = component!("oversized-output");
    /// Exports the contract as `kci:engine@0.9.0`, a version no host supports.
    pub const WRONG_API_VERSION: &[u8] = component!("wrong-api-version");

    // Complete engines that break one rule `db-operator plugin test` checks.
    /// `backup` answers differently on every call (it reads the monotonic clock).
    pub const NONDETERMINISTIC: &[u8] = component!("nondeterministic");
    /// `backup` sets `DB_PASSWORD` to a literal value instead of a Secret reference.
    pub const SECRET_LEAK: &[u8] = component!("secret-leak");
    /// Panics when the database name is empty.
    pub const TRAP_ON_EMPTY: &[u8] = component!("trap-on-empty");
    /// `backup` returns a ConfigMap instead of a PodSpec.
    pub const NOT_A_JOB: &[u8] = component!("not-a-job");
    /// `backup` asks for a privileged container.
    pub const PRIVILEGED: &[u8] = component!("privileged");
}

/// The engines shipped inside the operator, as `(engine name, component)`.
pub fn builtin_engines() -> &'static [(&'static str, &'static [u8])] {
    &[
        ("postgres", POSTGRES),
        ("mysql", MYSQL),
        ("mongodb", MONGODB),
        ("elasticsearch", ELASTICSEARCH),
        ("neo4j", NEO4J),
    ]
}
