//! Pipedrive's endpoints the plugin calls (spec `crm-plugins.md` section 5.2), each a method
//! that sends one request with `x-api-token` (never the legacy `api_token` query parameter)
//! and reads the one thing it needs.
//!
//! Every answer goes through [`Rules::PIPEDRIVE`] (section 3.6): `"success":true` is required,
//! a 429 waits `x-ratelimit-reset` seconds (else 2 s), other 4xx are permanent with
//! Pipedrive's `error` and `error_info`. The recording upload reads 409 (a recording exists)
//! as done and 404 or 410 as a call log deleted in Pipedrive.

use crate::call_log;
use callhook_plugin_sdk::DeliveryError;
use callhook_plugin_sdk::crm::errors::Rules;
use callhook_plugin_sdk::crm::idempotent::Sent;
use callhook_plugin_sdk::http::{Request, Response};
use callhook_plugin_sdk::query::QueryString;
use serde_json::Value;
use std::time::SystemTime;

/// A Pipedrive company, reached at `base` with an API token.
pub struct Api<'a> {
    base: &'a str,
    token: &'a str,
}

/// What became of a recording upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    /// Stored now.
    Stored,
    /// The call log has a recording already (409): an earlier attempt stored it.
    Existed,
    /// The call log was deleted in Pipedrive (404, 410).
    Gone,
}

impl<'a> Api<'a> {
    /// The API at `base` (no trailing `/`), authorised by `token`.
    pub fn new(base: &'a str, token: &'a str) -> Self {
        Api { base, token }
    }

    fn request(&self, request: Request) -> Request {
        request.header("x-api-token", self.token)
    }

    fn get(&self, path: &str, query: &QueryString) -> Result<Value, DeliveryError> {
        let url = query.append_to(&format!("{}{path}", self.base));
        let response = self.request(Request::get(&url)).send()?;
        Rules::PIPEDRIVE.check(&response, SystemTime::now())?;
        Ok(json(&response))
    }

    /// The person with this number among the persons Pipedrive's phone search finds.
    pub fn find_person(&self, number: &str) -> Result<Option<u64>, DeliveryError> {
        let mut query = QueryString::new();
        query.push("term", number).push("fields", "phone");
        let answer = self.get("/api/v2/persons/search", &query)?;
        Ok(call_log::matching_person(&answer, number))
    }

    /// The user with this e-mail.
    pub fn find_user(&self, email: &str) -> Result<Option<u64>, DeliveryError> {
        let mut query = QueryString::new();
        query.push("term", email).push("search_by_email", "1");
        let answer = self.get("/v1/users/find", &query)?;
        Ok(call_log::matching_user(&answer, email))
    }

    /// Sends the create of a call log; what became of it, for
    /// [`CreateOnce`](callhook_plugin_sdk::crm::idempotent::CreateOnce). Its id is a string.
    pub fn create_call_log(&self, body: &Value) -> Sent {
        let url = format!("{}/v1/callLogs", self.base);
        let request = self.request(Request::post(&url).json(body));
        Sent::from_http(request.send(), &Rules::PIPEDRIVE, SystemTime::now(), |r| {
            json(r)["data"]["id"].as_str().map(str::to_string)
        })
    }

    /// Uploads an MP3 as the recording of call log `id`.
    pub fn upload_recording(
        &self,
        id: &str,
        file_name: &str,
        mp3: &[u8],
    ) -> Result<Upload, DeliveryError> {
        let url = format!("{}/v1/callLogs/{id}/recordings", self.base);
        let request = Request::post(&url).multipart_file("file", file_name, "audio/mpeg", mp3);
        let response = self.request(request).send()?;
        match response.status {
            409 => return Ok(Upload::Existed),
            404 | 410 => return Ok(Upload::Gone),
            _ => {}
        }
        Rules::PIPEDRIVE.check(&response, SystemTime::now())?;
        Ok(Upload::Stored)
    }
}

/// The body as JSON; `Null` when it is not.
fn json(response: &Response) -> Value {
    serde_json::from_slice(&response.body).unwrap_or(Value::Null)
}
