//! Runs the emulator until interrupted and writes a kubeconfig for it, for poking at it with
//! kubectl: `cargo run -p dbo-apiserver --example serve -- kubeconfig.yaml`, then
//! `kubectl --kubeconfig kubeconfig.yaml get ns`.

use dbo_apiserver::{ApiServer, Config};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: serve <kubeconfig path to write>")?;
    let server = ApiServer::start(Config::default()).await?;
    std::fs::write(&path, server.kubeconfig("emulator"))?;
    println!(
        "serving {} (kubeconfig: {path}); Ctrl-C stops",
        server.url()
    );
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
