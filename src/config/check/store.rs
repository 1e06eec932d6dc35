//! `[store]`: retention of the audit log and of ended meetings' journals, and the database's
//! size cap.

use super::Checker;
use crate::config::raw::RawStore;
use crate::config::{ConfigError, StoreConfig};

impl Checker<'_> {
    pub(super) fn store(&self, raw: Option<&RawStore>) -> Result<StoreConfig, ConfigError> {
        let d = StoreConfig::default();
        let Some(raw) = raw else { return Ok(d) };
        let max_db_size = raw
            .max_db_size
            .as_ref()
            .map(|s| {
                parse_size(s.get_ref()).ok_or_else(|| {
                    self.loc.span(
                        s,
                        format!(
                            "store.max_db_size {:?}: write a size like \"512MiB\" or \"2GiB\" (at least 1MiB)",
                            s.get_ref()
                        ),
                    )
                })
            })
            .transpose()?;
        Ok(StoreConfig {
            audit_retention: self.duration(
                &raw.audit_retention,
                "store.audit_retention",
                d.audit_retention,
            )?,
            journal_retention: self.duration(
                &raw.journal_retention,
                "store.journal_retention",
                d.journal_retention,
            )?,
            max_db_size,
        })
    }
}

/// `"512MiB"`, `"2GiB"`, `"800KiB"` or plain bytes; at least 1 MiB, below which the bot
/// could not even hold its schema and a few messages.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(scale).filter(|b| *b >= 1 << 20)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_units_and_at_least_a_mebibyte() {
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("2 GiB"), Some(2 << 30));
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("1000KiB"), None);
        assert_eq!(parse_size("5MB"), None);
        assert_eq!(parse_size("MiB"), None);
    }
}
