//! Package-update alerts already announced (`watch_alerts`).

use std::collections::HashSet;

use super::{Store, StoreError};
use crate::core::watch::AlertKey;

impl Store {
    /// The upstream versions already announced by watch `watch`.
    pub fn watch_alerts(&self, watch: &str) -> Result<HashSet<AlertKey>, StoreError> {
        self.with(|c| {
            let mut q =
                c.prepare_cached("SELECT package, upstream FROM watch_alerts WHERE watch = ?1")?;
            let rows = q.query_map([watch], |r| {
                Ok(AlertKey {
                    watch: watch.to_owned(),
                    package: r.get(0)?,
                    upstream: r.get(1)?,
                })
            })?;
            rows.collect()
        })
    }
}
