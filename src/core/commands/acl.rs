//! Roles: which principals may run guarded commands (DESIGN §3). Nicks never grant anything.

use std::collections::{BTreeMap, BTreeSet};

use crate::core::event::Principal;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roles {
    members: BTreeMap<String, BTreeSet<Principal>>,
}

impl Roles {
    pub fn new(table: impl IntoIterator<Item = (String, Vec<Principal>)>) -> Self {
        let mut members: BTreeMap<String, BTreeSet<Principal>> = BTreeMap::new();
        for (role, principals) in table {
            members.entry(role).or_default().extend(principals);
        }
        Self { members }
    }

    /// Whether `who` holds `role`. Someone without a principal (not logged in, or text
    /// relayed across a bridge) holds no role.
    pub fn has(&self, who: Option<&Principal>, role: &str) -> bool {
        match who {
            Some(p) => self.members.get(role).is_some_and(|set| set.contains(p)),
            None => false,
        }
    }

    /// The roles that `who` holds, sorted.
    pub fn of(&self, who: Option<&Principal>) -> Vec<&str> {
        let Some(p) = who else { return Vec::new() };
        self.members
            .iter()
            .filter(|(_, set)| set.contains(p))
            .map(|(role, _)| role.as_str())
            .collect()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.members.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles() -> Roles {
        Roles::new([(
            "releng".to_owned(),
            vec![
                Principal::new("libera", "dcavalca"),
                Principal::new("fedora", "@ngompa:fedora.im"),
            ],
        )])
    }

    #[test]
    fn members_hold_their_role() {
        let r = roles();
        assert!(r.has(Some(&Principal::new("libera", "dcavalca")), "releng"));
        assert!(r.has(
            Some(&Principal::new("fedora", "@ngompa:fedora.im")),
            "releng"
        ));
        assert_eq!(
            r.of(Some(&Principal::new("libera", "dcavalca"))),
            ["releng"]
        );
    }

    #[test]
    fn same_identity_on_another_network_holds_nothing() {
        let r = roles();
        assert!(!r.has(Some(&Principal::new("oftc", "dcavalca")), "releng"));
    }

    #[test]
    fn no_principal_holds_nothing() {
        let r = roles();
        assert!(!r.has(None, "releng"));
        assert!(r.of(None).is_empty());
    }
}
