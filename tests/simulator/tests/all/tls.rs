//! HTTPS and WSS with the generated certificate, trusted through `ca_pem`.

use std::sync::Arc;

use callhook_simulator::{ParticipantChange, Scenario, SimConfig};
use rustls::pki_types::pem::PemObject;
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::{Events, start, token_with};

#[tokio::test]
async fn serves_https_and_wss_to_clients_trusting_the_ca() {
    let scenario = Scenario::builtin("01-direct-inbound-answered").unwrap();
    let sim = start(SimConfig {
        tls: true,
        directory: scenario.directory(),
        ..SimConfig::default()
    })
    .await;
    assert!(sim.base_url().starts_with("https://127.0.0.1:"));
    let pem = sim.ca_pem().expect("a CA with TLS");

    // An untrusting client fails the handshake.
    let plain = reqwest::Client::new();
    assert!(
        plain
            .get(format!("{}/callcontrol", sim.base_url()))
            .send()
            .await
            .is_err()
    );

    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let token = token_with(&trusting, &sim).await;
    let reply = trusting
        .get(format!("{}/callcontrol", sim.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);

    let mut roots = rustls::RootCertStore::empty();
    let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    roots.add(der).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut request = sim.ws_url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async_tls_with_config(
        request,
        None,
        false,
        Some(Connector::Rustls(Arc::new(tls))),
    )
    .await
    .expect("WSS upgrade");
    let mut events = Events::from_stream(socket);
    sim.wait_sockets(1).await;
    let ParticipantChange::Upsert(ringing) = scenario.timeline()[0].change.clone() else {
        panic!("scenario 01 starts with an upsert");
    };
    sim.apply(&ParticipantChange::Upsert(ringing));
    assert_eq!(events.next_json().await["sequence"], 1);
    sim.shutdown().await;
}
