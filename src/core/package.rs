//! Package versions as RPM repositories and Koji report them, and rpm's ordering of them.
//! Shared by declarative commands (a lookup's answer) and watches (what is newer).

use rpm_version::Evr;
use serde::Serialize;

/// The newest build of a package in a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageVersion {
    pub name: String,
    pub epoch: String,
    pub version: String,
    pub release: String,
    pub arch: String,
    /// `epoch:version-release`, epoch always shown.
    pub evr: String,
}

fn evr(p: &PackageVersion) -> Evr<'_> {
    Evr::new(p.epoch.as_str(), p.version.as_str(), p.release.as_str())
}

/// Whether `upstream` is newer than `ours` by rpm's ordering (epoch, then rpmvercmp of
/// version and release).
pub fn is_newer(upstream: &PackageVersion, ours: &PackageVersion) -> bool {
    evr(upstream) > evr(ours)
}

/// `version-release`, with the epoch only when it is not zero, as people write it.
pub fn display_evr(p: &PackageVersion) -> String {
    match p.epoch.as_str() {
        "" | "0" => format!("{}-{}", p.version, p.release),
        e => format!("{e}:{}-{}", p.version, p.release),
    }
}

/// A version of `systemd` on x86_64, for tests.
#[cfg(test)]
pub(crate) fn pv(epoch: &str, version: &str, release: &str) -> PackageVersion {
    PackageVersion {
        name: "systemd".into(),
        epoch: epoch.into(),
        version: version.into(),
        release: release.into(),
        arch: "x86_64".into(),
        evr: format!("{epoch}:{version}-{release}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpm_ordering_decides_what_is_newer() {
        assert!(is_newer(&pv("0", "256", "1.el9"), &pv("0", "255", "3.el9")));
        // rpmvercmp, not string order: 10 > 9, and "a" < "1" segments aside.
        assert!(is_newer(&pv("0", "1.10", "1"), &pv("0", "1.9", "1")));
        assert!(!is_newer(&pv("0", "1.0~rc1", "1"), &pv("0", "1.0", "1")));
        assert!(is_newer(&pv("0", "1.0^git1", "1"), &pv("0", "1.0", "1")));
        // The epoch wins over everything else; a missing epoch is 0.
        assert!(is_newer(&pv("1", "1.0", "1"), &pv("0", "9.9", "9")));
        assert!(!is_newer(&pv("", "1.0", "1"), &pv("0", "1.0", "1")));
        assert!(!is_newer(
            &pv("0", "255", "3.el9"),
            &pv("0", "255", "3.el9")
        ));
    }

    #[test]
    fn a_nonzero_epoch_is_shown() {
        assert_eq!(display_evr(&pv("2", "1.0", "1.el9")), "2:1.0-1.el9");
        assert_eq!(display_evr(&pv("", "1.0", "1.el9")), "1.0-1.el9");
    }
}
