//! Whose tokens the server trusts: issuer public keys from PEM files or a JWKS URL (rotated
//! while running), and production mode refusing the development key.

use std::sync::{Arc, Mutex};

use retract_client::{DevToken, SigningKey, pb};
use retract_server::{StartupError, config::Mode};
use tonic::Code;

use crate::{
    app::TestApp,
    db::Backend,
    fixtures::{self, es256, rs256},
    on_both_backends,
    status::expect_failure,
};

on_both_backends!(
    rs256_and_es256_issuer_keys_are_trusted_in_production,
    keys_rotate_through_the_jwks_url_while_running,
    production_mode_refuses_to_start_with_the_development_key,
);

fn platform() -> DevToken {
    DevToken::service("portal-backend").all_permissions()
}

async fn list_tenants(
    app: &TestApp,
    token: &DevToken,
) -> Result<pb::ListTenantsResponse, tonic::Status> {
    app.with_token(token)
        .tenant_service()
        .list_tenants(pb::ListTenantsRequest::default())
        .await
        .map(tonic::Response::into_inner)
}

async fn rs256_and_es256_issuer_keys_are_trusted_in_production(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.mode = Mode::Production;
        s.jwt_public_key_files = vec![
            fixtures::path("issuer-rsa.pub.pem"),
            fixtures::path("issuer-ec.pub.pem"),
        ];
    })
    .await;
    list_tenants(&app, &rs256(platform()))
        .await
        .expect("RS256 from the issuer");
    list_tenants(&app, &es256(platform()))
        .await
        .expect("ES256 from the issuer");
    let foreign = platform().signed_with(
        SigningKey::Rs256Pem(fixtures::read("rotated-rsa.key.pem")),
        None,
    );
    let f = expect_failure(list_tenants(&app, &foreign).await);
    assert_eq!(
        (f.code, f.reason.as_str()),
        (Code::Unauthenticated, "INVALID_SIGNATURE")
    );
    let dev = expect_failure(list_tenants(&app, &platform()).await);
    assert_eq!(dev.reason, "INVALID_SIGNATURE", "no HS256 in production");
    app.stop().await;
}

/// Serves whatever JWKS document `doc` holds, on 127.0.0.1.
async fn serve_jwks(doc: Arc<Mutex<String>>) -> String {
    let router = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let doc = doc.clone();
            async move {
                let body = doc.lock().unwrap().clone();
                ([(http::header::CONTENT_TYPE, "application/json")], body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}/jwks.json")
}

async fn keys_rotate_through_the_jwks_url_while_running(backend: Backend) {
    let doc = Arc::new(Mutex::new(fixtures::read("jwks-issuer.json")));
    let url = serve_jwks(doc.clone()).await;
    // The JWKS server here is plain HTTP on loopback, which production refuses by itself.
    let app = TestApp::spawn_with(backend, |s| {
        s.mode = Mode::Production;
        s.allow_insecure_production = true;
        s.jwt_jwks_url = Some(url);
        s.jwt_jwks_refresh_ms = 100;
    })
    .await;
    let current = platform().signed_with(
        SigningKey::Rs256Pem(fixtures::read("issuer-rsa.key.pem")),
        Some("issuer-2026"),
    );
    let next = platform().signed_with(
        SigningKey::Rs256Pem(fixtures::read("rotated-rsa.key.pem")),
        Some("rotated-2027"),
    );
    list_tenants(&app, &current)
        .await
        .expect("the published key is trusted");
    let f = expect_failure(list_tenants(&app, &next).await);
    assert_eq!(f.reason, "INVALID_SIGNATURE", "an unpublished key is not");

    *doc.lock().unwrap() = fixtures::read("jwks-rotated.json");
    let rotated = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            if list_tenants(&app, &next).await.is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        rotated.is_ok(),
        "the rotated key is trusted after a refresh"
    );
    let f = expect_failure(list_tenants(&app, &current).await);
    assert_eq!(f.reason, "INVALID_SIGNATURE", "the retired key is not");
    app.stop().await;
}

async fn production_mode_refuses_to_start_with_the_development_key(backend: Backend) {
    for adjust in [
        (|s: &mut retract_server::Settings| s.mode = Mode::Production)
            as fn(&mut retract_server::Settings),
        |s| {
            s.mode = Mode::Production;
            s.jwt_hs256_secret = Some(secrecy::SecretString::from(
                retract_server::config::DEVELOPMENT_JWT_SECRET,
            ));
            s.jwt_public_key_files = vec![fixtures::path("issuer-rsa.pub.pem")];
        },
    ] {
        match TestApp::try_spawn_with(backend, adjust).await {
            Ok(app) => {
                app.stop().await;
                panic!("production started with insecure settings");
            }
            Err((err, db)) => {
                assert!(matches!(err, StartupError::Settings(_)), "{err}");
                assert!(
                    err.to_string()
                        .contains("refusing to start in production mode"),
                    "{err}"
                );
                db.drop_database().await;
            }
        }
    }
    let app = TestApp::spawn_with(backend, |s| {
        s.mode = Mode::Production;
        s.allow_insecure_production = true;
    })
    .await;
    list_tenants(&app, &platform())
        .await
        .expect("the explicit override starts (loudly) with the dev key");
    app.stop().await;
}
