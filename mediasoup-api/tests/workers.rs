//! Workers and routers over a real ROPE connection with real mediasoup workers.

mod common;

use common::{App, class, rpc};
use mafalda_mediasoup_api::{Grants, Limits};
use serde_json::json;

#[tokio::test]
async fn worker_and_router_are_created_dumped_and_closed_with_their_subtree() {
    let mut app = App::start().await;
    let (worker, router) = app.router().await;
    let router_id = router["id"].as_str().expect("router id").to_owned();
    assert!(router["rtpCapabilities"]["codecs"].as_array().is_some_and(|codecs| codecs.len() >= 3));
    let dump = app.ok(Some(&worker), "dump", json!(null)).await;
    assert_eq!(dump["routerIds"], json!([router_id]));
    assert_eq!(dump["pid"], json!(std::process::id()));
    let router_dump = app.ok(Some(&router_id), "dump", json!(null)).await;
    assert_eq!(router_dump["id"], json!(router_id));
    assert!(router_dump["mapProducerIdConsumerIds"].is_array(), "Node's shape: {router_dump}");
    app.ok(Some(&worker), "close", json!(null)).await;
    app.event(&router_id, "closed").await;
    app.event(&worker, "closed").await;
    assert!(app.session.is_empty());
    let error = rpc(app.call(Some(&router_id), "dump", json!(null)).await.expect_err("router gone"));
    assert_eq!(error.code, -32001);
}

#[tokio::test]
async fn wrong_worker_settings_are_type_errors_and_create_nothing() {
    let app = App::start().await;
    for settings in [
        json!({ "logLevel": "chicken" }),
        json!({ "rtcMinPort": 1000, "rtcMaxPort": 999 }),
        json!({ "rtcMinPort": 1000, "rtcMaxPort": 65536 }),
        json!({ "dtlsCertificateFile": "/notfound/cert.pem", "dtlsPrivateKeyFile": "/notfound/key.pem" }),
        json!({ "appData": "NOT-AN-OBJECT" }),
        json!({ "unknownOption": true }),
    ] {
        let error = rpc(app.call(None, "mediasoup.createWorker", settings.clone()).await.expect_err("refused"));
        assert_eq!(class(&error), "TypeError", "{settings}: {error:?}");
    }
    assert!(app.session.is_empty());
}

#[tokio::test]
async fn a_connection_holds_at_most_its_workers_and_needs_the_grant() {
    let app = App::start_with(Limits { workers: 2, objects: 100 }, Grants { workers: true, files: false }).await;
    app.worker().await;
    app.worker().await;
    let error = rpc(app.call(None, "mediasoup.createWorker", json!({})).await.expect_err("third refused"));
    assert_eq!(error.code, -32004);
    let files = json!({ "dtlsCertificateFile": "/etc/hostname", "dtlsPrivateKeyFile": "/etc/hostname" });
    let app = App::start_with(Limits::default(), Grants { workers: true, files: false }).await;
    let error = rpc(app.call(None, "mediasoup.createWorker", files).await.expect_err("files refused"));
    assert_eq!(error.code, -32003);
    let app = App::start_with(Limits::default(), Grants { workers: false, files: false }).await;
    let error = rpc(app.call(None, "mediasoup.createWorker", json!({})).await.expect_err("workers refused"));
    assert_eq!(error.code, -32003);
    assert!(app.session.is_empty());
}

#[tokio::test]
async fn closing_the_session_closes_every_worker() {
    let mut app = App::start().await;
    let (worker, _router) = app.router().await;
    assert_eq!(app.host.workers(), 1, "the host counts the app's worker");
    app.session.close_all();
    app.event(&worker, "closed").await;
    assert!(app.session.is_empty());
    for _ in 0..100 {
        if app.host.workers() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(app.host.workers(), 0, "the worker stopped with its session");
    let error = rpc(app.call(None, "mediasoup.createWorker", json!({})).await.expect_err("closed session"));
    assert_eq!(class(&error), "InvalidStateError");
}

#[tokio::test]
async fn a_close_answers_once_the_parent_no_longer_lists_the_object() {
    let app = App::start().await;
    for _ in 0..5 {
        let (worker, router) = app.router().await;
        let router_id = router["id"].as_str().expect("router id").to_owned();
        app.ok(Some(&router_id), "close", json!(null)).await;
        let dump = app.ok(Some(&worker), "dump", json!(null)).await;
        assert_eq!(dump["routerIds"], json!([]), "the worker forgot the router by the time close answered");
        app.ok(Some(&worker), "close", json!(null)).await;
    }
}
