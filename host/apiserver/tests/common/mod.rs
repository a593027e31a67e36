//! Starting a server and a kube-rs client talking to it.

#![allow(dead_code)] // each test binary uses a different part

use dbo_apiserver::{ApiServer, Config};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

pub async fn client_for(server: &ApiServer) -> Client {
    let kubeconfig = Kubeconfig::from_yaml(&server.kubeconfig("test")).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig is usable");
    Client::try_from(config).expect("client builds")
}

pub async fn start_with(config: Config) -> (ApiServer, Client) {
    let server = ApiServer::start(config).await.expect("server starts");
    let client = client_for(&server).await;
    (server, client)
}

pub async fn start() -> (ApiServer, Client) {
    start_with(Config::default()).await
}

/// Starts a server with db-operator's CRDs installed.
pub async fn start_with_crds() -> (ApiServer, Client) {
    let (server, client) = start().await;
    install_crds(&client).await;
    (server, client)
}

pub async fn install_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in dbo_api::crds() {
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("CRD is accepted");
    }
}

/// The `Status` error a request failed with.
pub fn api_error<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}
