//! The stand-ins over real HTTP: requests built by hand with `reqwest`, one module per CRM.

mod bitrix24;
mod hubspot;
mod pipedrive;
mod zoho;

/// A client that does not pool connections (a cut connection must not be reused).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}
