//! The PBX's user list (contract 0.2's `user-info`): extension number → name and e-mail.
//!
//! Read from XAPI `Users` like the inbound rules: at start, then periodically; a failed read
//! keeps the last list. The runtime reads the current list at each delivery through a
//! [`UserDirectory`], a shared handle whose list is swapped whole, so a delivery never sees a
//! half-updated list.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

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
