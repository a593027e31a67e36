//! HTTP plumbing: the accept loop, request parsing, routing to discovery and resource
//! handlers, faults and counters.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::faults::{Counters, Faults};
use crate::handlers::{self, Query, Reply, Target, WriteParams};
use crate::openapi;
use crate::status::ApiError;
use crate::store::Store;
use crate::watch::{self, WatchRequest};

pub(crate) type Body = BoxBody<Bytes, Infallible>;

pub(crate) struct Context {
    pub store: Arc<Store>,
    pub faults: Faults,
    pub counters: Counters,
    pub bookmark_interval: Duration,
    pub shutdown: tokio::sync::watch::Receiver<()>,
}

pub(crate) async fn serve(
    listener: TcpListener,
    ctx: Arc<Context>,
    shutdown: tokio::sync::watch::Receiver<()>,
) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!("accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let ctx = ctx.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(handle(&ctx, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                result = conn => {
                    if let Err(e) = result {
                        tracing::debug!("connection ended with an error: {e}");
                    }
                }
                _ = shutdown.changed() => {}
            }
        });
    }
}

fn full(code: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()).boxed());
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

fn json_response(code: u16, body: &Value) -> Response<Body> {
    full(code, "application/json", body.to_string())
}

fn error_response(err: &ApiError) -> Response<Body> {
    let mut resp = json_response(err.code(), &err.to_status());
    if err.code() == 429 {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

fn reply_response(reply: Reply) -> Response<Body> {
    let mut resp = json_response(reply.code, &reply.body);
    for w in reply.warnings {
        let text = format!("299 - {}", serde_json::Value::String(w));
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

fn parse_query(raw: Option<&str>) -> Query {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        percent_encoding::percent_decode_str(&s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let mut q = HashMap::new();
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        q.insert(decode(k), decode(v));
    }
    q
}

fn header_str(req: &Request<Incoming>, name: header::HeaderName) -> &str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether the client prefers aggregated discovery v2 (kubectl asks for it first and falls back
/// to the legacy documents only when the answer's content type says they are legacy).
fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').next().is_some_and(|first| {
        let params: Vec<&str> = first.split(';').map(str::trim).collect();
        params.contains(&"as=APIGroupDiscoveryList")
            && params.contains(&"g=apidiscovery.k8s.io")
            && params.contains(&"v=v2")
    })
}

async fn handle(ctx: &Context, req: Request<Incoming>) -> Response<Body> {
    ctx.counters.request();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = parse_query(req.uri().query());
    let accept = header_str(&req, header::ACCEPT).to_owned();
    let content_type = header_str(&req, header::CONTENT_TYPE).to_owned();
    let user_agent = header_str(&req, header::USER_AGENT).to_owned();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return error_response(&ApiError::BadRequest(format!(
                "reading the request body failed: {e}"
            )));
        }
    };
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();

    if method == Method::GET
        && let Some(resp) = discovery(ctx, &segs, &accept)
    {
        return resp;
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return error_response(&ApiError::NoSuchPath),
    };
    let target = match resolve(ctx, group, version, rest) {
        Ok(t) => t,
        Err(e) => return error_response(&e),
    };
    let verb = match (&method, target.name.is_some()) {
        (&Method::GET, true) => "get",
        (&Method::GET, false)
            if matches!(query.get("watch").map(String::as_str), Some("true" | "1")) =>
        {
            "watch"
        }
        (&Method::GET, false) => "list",
        (&Method::POST, false) => "create",
        (&Method::PUT, true) => "update",
        (&Method::PATCH, true) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => return error_response(&ApiError::MethodNotAllowed),
    };
    if target.subresource.is_some() && !matches!(verb, "get" | "update" | "patch") {
        return error_response(&ApiError::MethodNotAllowed);
    }
    ctx.counters.resource_request(verb, &target.rt.plural);
    let decision = ctx.faults.decide(verb, &target.rt.plural);
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    if let Some(code) = decision.fail_with {
        let err = match code {
            409 => ApiError::Conflict {
                what: target.rt.qualified(),
                name: target.name.clone().unwrap_or_default(),
                reason: "the object has been modified; please apply your changes to the latest version and try again".into(),
            },
            429 => ApiError::TooManyRequests(
                "the server has received too many requests and has asked us to try again later"
                    .into(),
            ),
            _ => ApiError::Internal(
                "an error on the server (\"injected fault\") has prevented the request from succeeding".into(),
            ),
        };
        return error_response(&err);
    }

    if verb == "watch" {
        let req = match WatchRequest::new(
            target,
            &query,
            &accept,
            ctx.bookmark_interval,
            decision.drop_watch_after,
        ) {
            Ok(r) => r,
            Err(e) => return error_response(&e),
        };
        return match watch::start(&ctx.store, req, &query, ctx.shutdown.clone()) {
            Ok(rx) => watch_response(rx),
            Err(e) => error_response(&e),
        };
    }

    let params = WriteParams {
        query: &query,
        user_agent: &user_agent,
    };
    let result = {
        let mut state = ctx.store.lock();
        let result = match verb {
            "get" => handlers::get(&state, &target, &query, &accept),
            "list" => handlers::list(&state, &target, &query, &accept),
            "create" => handlers::parse_body(&body, &content_type)
                .and_then(|obj| handlers::create(&mut state, &target, obj, &params)),
            "update" => handlers::parse_body(&body, &content_type)
                .and_then(|obj| handlers::update(&mut state, &target, obj, &params)),
            "patch" => handlers::patch(&mut state, &target, &body, &content_type, &params),
            "delete" => handlers::delete(&mut state, &target, &body, &query),
            _ => handlers::delete_collection(&mut state, &target, &body, &query),
        };
        ctx.store.kick_gc(&mut state);
        result
    };
    match result {
        Ok(reply) => reply_response(reply),
        Err(e) => error_response(&e),
    }
}

fn watch_response(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    resp
}

/// Resolves `{plural}[/{name}[/{sub}]]` or `namespaces/{ns}/{plural}[/...]`.
fn resolve(ctx: &Context, group: &str, version: &str, rest: &[&str]) -> Result<Target, ApiError> {
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if !(group.is_empty() && matches!(*plural, "status" | "finalize")) =>
        {
            (Some((*ns).to_owned()), {
                let mut v = vec![*plural];
                v.extend_from_slice(tail);
                v
            })
        }
        other => (None, other.to_vec()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some((*name).to_owned()), None),
        [plural, name, sub] => (*plural, Some((*name).to_owned()), Some((*sub).to_owned())),
        _ => return Err(ApiError::NoSuchPath),
    };
    let rt = ctx
        .store
        .lock()
        .registry
        .lookup(group, version, plural)
        .ok_or(ApiError::NoSuchPath)?;
    if namespace.is_some() && !rt.namespaced {
        return Err(ApiError::NoSuchPath);
    }
    if namespace.is_none() && rt.namespaced && name.is_some() {
        return Err(ApiError::NoSuchPath);
    }
    if let Some(sub) = &sub
        && !(sub == "status" && rt.status_subresource)
    {
        return Err(ApiError::NoSuchPath);
    }
    Ok(Target {
        rt,
        version: version.to_owned(),
        namespace,
        name,
        subresource: sub,
    })
}

fn discovery(ctx: &Context, segs: &[&str], accept: &str) -> Option<Response<Body>> {
    let state = ctx.store.lock();
    let registry = &state.registry;
    let resp = match segs {
        ["version"] => json_response(200, &version_info()),
        ["healthz" | "readyz" | "livez", ..] => full(200, "text/plain; charset=utf-8", "ok"),
        ["api"] if wants_aggregated(accept) => {
            full(200, AGGREGATED, registry.aggregated(true).to_string())
        }
        ["api"] => json_response(200, &registry.api_versions()),
        ["apis"] if wants_aggregated(accept) => {
            full(200, AGGREGATED, registry.aggregated(false).to_string())
        }
        ["apis"] => json_response(200, &registry.api_group_list()),
        ["api", "v1"] => json_response(200, &registry.api_resource_list("", "v1")?),
        ["apis", group] => match registry.api_group(group) {
            Some(g) => json_response(200, &g),
            None => error_response(&ApiError::NoSuchPath),
        },
        ["apis", group, version] => match registry.api_resource_list(group, version) {
            Some(l) => json_response(200, &l),
            None => error_response(&ApiError::NoSuchPath),
        },
        ["openapi", "v2"] => openapi::v2(),
        ["openapi", "v3"] => json_response(200, &openapi::v3_root(registry)),
        ["openapi", "v3", rest @ ..] => match openapi::v3_group_version(registry, rest) {
            Some(doc) => json_response(200, &doc),
            None => error_response(&ApiError::NoSuchPath),
        },
        _ => return None,
    };
    Some(resp)
}

fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "37",
        "emulationMajor": "1",
        "emulationMinor": "37",
        "gitVersion": "v1.37.0",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}
