//! mTLS between services: the server presents its certificate and accepts only clients with a
//! certificate from the configured CA. Certificates are made fresh in each test.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::{app::TestApp, db::Backend, on_both_backends};

on_both_backends!(
    with_mtls_only_clients_holding_a_certificate_of_the_ca_get_in,
    the_rust_client_trusts_a_private_ca_it_is_given,
    the_client_crate_and_retractctl_speak_mtls_with_generated_certificates,
);

struct Pki {
    ca_pem: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self {
            ca_pem: issuer.pem(),
            issuer,
        }
    }

    /// A certificate and key for `names`, for `usage`.
    fn leaf(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

async fn channel(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    identity: Option<(String, String)>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect()
        .await
}

async fn health_check(channel: Result<Channel, tonic::transport::Error>) -> bool {
    match channel {
        Ok(channel) => HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .is_ok(),
        Err(_) => false,
    }
}

async fn with_mtls_only_clients_holding_a_certificate_of_the_ca_get_in(backend: Backend) {
    let pki = Pki::new("retract test CA");
    let (server_cert, server_key) = pki.leaf(
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) =
        pki.leaf(&["gateway.internal"], ExtendedKeyUsagePurpose::ClientAuth);
    let stranger = Pki::new("someone else's CA");
    let (stranger_cert, stranger_key) =
        stranger.leaf(&["mallory.internal"], ExtendedKeyUsagePurpose::ClientAuth);

    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let (cert_file, key_file, ca_file) = (
        write("server.pem", &server_cert),
        write("server.key", &server_key),
        write("ca.pem", &pki.ca_pem),
    );
    let app = TestApp::spawn_with(backend, |s| {
        s.tls_cert_file = Some(cert_file);
        s.tls_key_file = Some(key_file);
        s.tls_client_ca_file = Some(ca_file);
    })
    .await;

    assert!(
        health_check(channel(app.addr, &pki.ca_pem, Some((client_cert, client_key))).await).await,
        "a client with a certificate of the CA is served"
    );
    assert!(
        !health_check(channel(app.addr, &pki.ca_pem, None).await).await,
        "a client without a certificate is refused"
    );
    assert!(
        !health_check(channel(app.addr, &pki.ca_pem, Some((stranger_cert, stranger_key))).await)
            .await,
        "a certificate of another CA is refused"
    );
    // The administrator's browser has no client certificate, yet reaches the consent page.
    let browser = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let page = browser
        .get(format!(
            "https://localhost:{}/consent/callback?state=unknown",
            app.addr.port()
        ))
        .send()
        .await
        .expect("TLS without a client certificate reaches the browser page");
    assert_eq!(
        page.status(),
        400,
        "the unknown-state page, not a TLS failure"
    );

    let plaintext = Endpoint::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect()
        .await;
    assert!(!health_check(plaintext).await, "plaintext is refused");
    app.stop().await;
}

/// `retractctl --ca-file` (and the quickstart over TLS): the Rust client reaches a server
/// whose certificate a private CA signed only when it is given that CA.
async fn the_rust_client_trusts_a_private_ca_it_is_given(backend: Backend) {
    let pki = Pki::new("quickstart CA");
    let (server_cert, server_key) = pki.leaf(
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    std::fs::write(&cert_file, &server_cert).unwrap();
    std::fs::write(&key_file, &server_key).unwrap();
    let app = TestApp::spawn_with(backend, |s| {
        s.tls_cert_file = Some(cert_file);
        s.tls_key_file = Some(key_file);
    })
    .await;
    let endpoint = format!("https://localhost:{}", app.addr.port());
    let token = retract_client::DevToken::service("portal-backend")
        .all_permissions()
        .mint()
        .unwrap();
    let list = |client: retract_client::Client| {
        let client = client.with_token(&token).unwrap();
        async move {
            client
                .tenant_service()
                .list_tenants(retract_client::pb::ListTenantsRequest::default())
                .await
        }
    };
    let trusting =
        retract_client::Client::connect_trusting(endpoint.clone(), Some(pki.ca_pem.as_bytes()))
            .await
            .expect("the CA it was given signed the server's certificate");
    assert!(list(trusting).await.is_ok(), "served over TLS");
    let stranger = Pki::new("someone else's CA");
    let refused =
        match retract_client::Client::connect_trusting(endpoint, Some(stranger.ca_pem.as_bytes()))
            .await
        {
            Err(_) => true,
            Ok(client) => list(client).await.is_err(),
        };
    assert!(
        refused,
        "trusting another CA, the server's certificate is not trusted"
    );
    app.stop().await;
}

/// `ConnectOptions` (CA + client certificate) and `retractctl --ca-file --cert-file
/// --key-file` against a server that requires mTLS; without the certificate, or trusting only
/// the system's roots, they are refused.
async fn the_client_crate_and_retractctl_speak_mtls_with_generated_certificates(backend: Backend) {
    use retract_client::{Code, ConnectOptions, DevToken, pb};

    let pki = Pki::new("services CA");
    let (server_cert, server_key) = pki.leaf(
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) =
        pki.leaf(&["portal.internal"], ExtendedKeyUsagePurpose::ClientAuth);
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let (cert_file, key_file, ca_file) = (
        write("server.pem", &server_cert),
        write("server.key", &server_key),
        write("ca.pem", &pki.ca_pem),
    );
    let (client_cert_file, client_key_file) = (
        write("client.pem", &client_cert),
        write("client.key", &client_key),
    );
    let app = TestApp::spawn_with(backend, |s| {
        s.tls_cert_file = Some(cert_file);
        s.tls_key_file = Some(key_file);
        s.tls_client_ca_file = Some(ca_file.clone());
    })
    .await;
    let endpoint = format!("https://localhost:{}", app.addr.port());
    let token = DevToken::service("portal-backend").all_permissions();
    let list = |options: ConnectOptions| async move {
        options
            .token_source(DevToken::service("portal-backend").all_permissions())
            .connect()
            .await?
            .list_tenants(pb::ListTenantsRequest::default())
            .await
    };

    let mtls = ConnectOptions::new(endpoint.clone())
        .ca_certificate_pem(pki.ca_pem.clone())
        .client_identity_pem(client_cert.clone(), client_key.clone());
    mtls.clone()
        .token_source(token.clone())
        .connect()
        .await
        .expect("connects over mTLS")
        .create_tenant(pb::CreateTenantRequest {
            tenant_id: "acme".into(),
            display_name: "Acme".into(),
        })
        .await
        .expect("served over mTLS");
    let tenants = list(mtls).await.expect("served over mTLS");
    assert_eq!(tenants.tenants.len(), 1);
    let without_certificate =
        list(ConnectOptions::new(endpoint.clone()).ca_certificate_pem(pki.ca_pem.clone())).await;
    let refused = without_certificate.expect_err("no client certificate: refused");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused}");
    assert_eq!(
        refused.api().and_then(|e| e.reason()),
        Some("CLIENT_CERTIFICATE_REQUIRED")
    );
    let system_roots = list(
        ConnectOptions::new(endpoint.clone())
            .client_identity_pem(client_cert.clone(), client_key.clone()),
    )
    .await
    .expect_err("the system's roots do not trust a private CA");
    assert_eq!(system_roots.code(), Code::Unavailable, "{system_roots}");
    let plaintext_with_tls_options = ConnectOptions::new(format!("http://{}", app.addr))
        .ca_certificate_pem(pki.ca_pem.clone())
        .connect_lazy()
        .err()
        .expect("TLS options on an http:// endpoint are refused");
    assert_eq!(plaintext_with_tls_options.code(), Code::InvalidArgument);

    let paths = [&ca_file, &client_cert_file, &client_key_file].map(|p| p.to_str().unwrap());
    let tls_args = [
        "--ca-file",
        paths[0],
        "--cert-file",
        paths[1],
        "--key-file",
        paths[2],
    ];
    let run = |args: Vec<&str>| {
        let mut cmd = crate::cli::command(&app, Some(&token), &args);
        cmd.env("RETRACT_ENDPOINT", &endpoint);
        async move { cmd.output().await.expect("retractctl runs") }
    };
    let out = run([&["tenants", "list"][..], &tls_args].concat()).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("acme"),
        "{out:?}"
    );
    let out = run([&["tenants", "list"][..], &tls_args[..2]].concat()).await;
    assert_eq!(
        out.status.code(),
        Some(5),
        "without a client certificate: {out:?}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("CLIENT_CERTIFICATE_REQUIRED"));
    app.stop().await;
}
