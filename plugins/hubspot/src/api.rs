//! HubSpot's CRM v3 endpoints the plugin calls (spec `crm-plugins.md` section 4.2), each a
//! method that sends one request with the token and reads the one thing it needs.
//!
//! Every answer goes through [`Rules::HUBSPOT`] (section 3.6): 429 waits by `policyName`,
//! 423 and 477 are retried, other 4xx are permanent with HubSpot's `message`. The only answer
//! read otherwise is a 404 on a call, which means it was deleted (section 3.4).

use crate::call;
use callhook_plugin_sdk::DeliveryError;
use callhook_plugin_sdk::crm::errors::Rules;
use callhook_plugin_sdk::crm::idempotent::Sent;
use callhook_plugin_sdk::http::{Request, Response};
use callhook_plugin_sdk::query::QueryString;
use serde_json::Value;
use std::time::SystemTime;

/// A HubSpot account, reached at `base` with a private app token.
pub struct Api<'a> {
    base: &'a str,
    token: &'a str,
}

impl<'a> Api<'a> {
    /// The API at `base` (no trailing `/`), authorised by `token`.
    pub fn new(base: &'a str, token: &'a str) -> Self {
        Api { base, token }
    }

    fn request(&self, request: Request) -> Request {
        request.header("authorization", &format!("Bearer {}", self.token))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `request` and requires a success by HubSpot's rules; the parsed body.
    fn send(&self, request: Request) -> Result<Value, DeliveryError> {
        let response = self.request(request).send()?;
        Rules::HUBSPOT.check(&response, SystemTime::now())?;
        Ok(json(&response))
    }

    /// The first contact whose `phone` or `mobilephone` equals one of `numbers`.
    pub fn search_contact(&self, numbers: &[&str]) -> Result<Option<String>, DeliveryError> {
        let request = Request::post(&self.url("/crm/v3/objects/contacts/search"))
            .json(&call::contact_search(numbers));
        Ok(first_id(&self.send(request)?))
    }

    /// Creates a contact with only a phone number; its id.
    pub fn create_contact(&self, number: &str) -> Result<String, DeliveryError> {
        let request = Request::post(&self.url("/crm/v3/objects/contacts"))
            .json(&call::contact_create(number));
        let body = self.send(request)?;
        id(&body).ok_or_else(|| {
            DeliveryError::retryable("HubSpot created a contact but answered without its id")
        })
    }

    /// The owner with this e-mail.
    pub fn find_owner(&self, email: &str) -> Result<Option<String>, DeliveryError> {
        let mut query = QueryString::new();
        query.push("email", email);
        let request = Request::get(&query.append_to(&self.url("/crm/v3/owners")));
        Ok(first_id(&self.send(request)?))
    }

    /// Sends the create of a call; what became of it, for [`CreateOnce`](callhook_plugin_sdk::crm::idempotent::CreateOnce).
    /// `searchable` (an `id_property` is set): a 5xx answer leaves the outcome unknown, for
    /// the next attempt to search before it creates again.
    pub fn create_call(&self, body: &Value, searchable: bool) -> Sent {
        let request = self.request(Request::post(&self.url("/crm/v3/objects/calls")).json(body));
        let sent = request.send();
        let id = |r: &Response| id(&json(r));
        if searchable {
            Sent::from_http_searchable(sent, &Rules::HUBSPOT, SystemTime::now(), id)
        } else {
            Sent::from_http(sent, &Rules::HUBSPOT, SystemTime::now(), id)
        }
    }

    /// The call whose `{id_property}` is `key`, if HubSpot's search shows one.
    pub fn search_call(
        &self,
        id_property: &str,
        key: &str,
    ) -> Result<Option<String>, DeliveryError> {
        let request = Request::post(&self.url("/crm/v3/objects/calls/search"))
            .json(&call::call_search(id_property, key));
        Ok(first_id(&self.send(request)?))
    }

    /// The `hs_call_body` of call `id`; `None` when the call is gone (404).
    pub fn call_body(&self, id: &str) -> Result<Option<String>, DeliveryError> {
        let url = self.url(&format!(
            "/crm/v3/objects/calls/{id}?properties=hs_call_body"
        ));
        let Some(body) = self.unless_gone(Request::get(&url))? else {
            return Ok(None);
        };
        let text = body["properties"]["hs_call_body"].as_str().unwrap_or("");
        Ok(Some(text.to_string()))
    }

    /// Updates call `id` with `patch`; false when the call is gone (404).
    pub fn patch_call(&self, id: &str, patch: &Value) -> Result<bool, DeliveryError> {
        let url = self.url(&format!("/crm/v3/objects/calls/{id}"));
        Ok(self
            .unless_gone(Request::patch(&url).json(patch))?
            .is_some())
    }

    /// Like `send`, but a 404 (a record deleted in HubSpot) is `None`.
    fn unless_gone(&self, request: Request) -> Result<Option<Value>, DeliveryError> {
        let response = self.request(request).send()?;
        if response.status == 404 {
            return Ok(None);
        }
        Rules::HUBSPOT.check(&response, SystemTime::now())?;
        Ok(Some(json(&response)))
    }
}

/// The body as JSON; `Null` when it is not.
fn json(response: &Response) -> Value {
    serde_json::from_slice(&response.body).unwrap_or(Value::Null)
}

/// An object's `id`.
fn id(object: &Value) -> Option<String> {
    object["id"].as_str().map(str::to_string)
}

/// The `id` of `results[0]` of a search or list.
fn first_id(body: &Value) -> Option<String> {
    id(&body["results"][0])
}
