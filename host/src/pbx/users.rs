//! The PBX's user list (contract 0.2's `user-info`): extension number → name and e-mail.
//!
//! Read from XAPI `Users` like the inbound rules: at start, then periodically; a failed read
//! keeps the last list. The runtime reads the current list at each delivery through a
//! [`UserDirectory`], a shared handle whose list is swapped whole, so a delivery never sees a
//! half-updated list.

use super::rest::RestClient;
use super::xapi::XapiUser;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the user list is read again.
pub const USERS_REFRESH: Duration = Duration::from_secs(600);
/// How soon a failed read is tried again (the last list stays in force meanwhile).
pub const USERS_RETRY: Duration = Duration::from_secs(60);

/// Reads the PBX's user list into `directory` now and every [`USERS_REFRESH`], until
/// `cancel`; a failed read keeps the last list and is tried again after [`USERS_RETRY`].
pub async fn refresh(rest: RestClient, directory: UserDirectory, cancel: CancellationToken) {
    loop {
        let wait = match rest.users().await {
            Ok(users) => {
                directory.replace(user_table(&users));
                USERS_REFRESH
            }
            Err(error) => {
                tracing::warn!(%error, "could not read the PBX's users; `user-info` keeps the last list");
                USERS_RETRY
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// The list by extension number; users without a number are left out.
pub fn user_table(users: &[XapiUser]) -> BTreeMap<String, UserInfo> {
    users
        .iter()
        .filter(|user| !user.number.trim().is_empty())
        .map(|user| {
            let info = UserInfo::from_names(&user.first_name, &user.last_name, &user.email_address);
            (user.number.trim().to_owned(), info)
        })
        .collect()
}

/// Who an extension is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// `FirstName LastName`, trimmed.
    pub name: String,
    /// The e-mail address; `None` when the PBX has an empty one.
    pub email: Option<String>,
}

impl UserInfo {
    /// The entry of one XAPI user: `name` is the names joined by a space and trimmed, an empty
    /// e-mail is none.
    pub fn from_names(first: &str, last: &str, email: &str) -> UserInfo {
        let email = email.trim();
        UserInfo {
            name: format!("{} {}", first.trim(), last.trim())
                .trim()
                .to_owned(),
            email: (!email.is_empty()).then(|| email.to_owned()),
        }
    }
}

/// The current user list, shared between the task that refreshes it and the runtime; cheap to
/// clone. Empty by default (every `user-info` none).
#[derive(Debug, Clone, Default)]
pub struct UserDirectory {
    users: Arc<RwLock<Arc<BTreeMap<String, UserInfo>>>>,
}

impl UserDirectory {
    /// Replaces the whole list.
    pub fn replace(&self, users: BTreeMap<String, UserInfo>) {
        *self.users.write().expect("user list poisoned") = Arc::new(users);
    }

    /// The user with extension `number`, if the list has one.
    pub fn get(&self, number: &str) -> Option<UserInfo> {
        self.users
            .read()
            .expect("user list poisoned")
            .get(number)
            .cloned()
    }

    /// How many users the list holds.
    pub fn len(&self) -> usize {
        self.users.read().expect("user list poisoned").len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_joined_and_empty_emails_dropped() {
        #[rustfmt::skip]
        let cases = [
            (("Anna", "Mueller", "anna@example.com"), ("Anna Mueller", Some("anna@example.com"))),
            (("Anna", "", ""),                        ("Anna", None)),
            (("", " Mueller ", " "),                  ("Mueller", None)),
        ];
        for ((first, last, email), (name, mail)) in cases {
            let info = UserInfo::from_names(first, last, email);
            assert_eq!(info.name, name);
            assert_eq!(info.email.as_deref(), mail);
        }
    }

    #[test]
    fn a_directory_is_replaced_whole() {
        let directory = UserDirectory::default();
        assert_eq!(directory.get("120"), None);
        let shared = directory.clone();
        shared.replace(BTreeMap::from([(
            "120".to_owned(),
            UserInfo::from_names("Anna", "Mueller", ""),
        )]));
        assert_eq!(directory.get("120").unwrap().name, "Anna Mueller");
        assert_eq!(directory.len(), 1);
    }
}
