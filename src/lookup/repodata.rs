//! The `repodata` action: the newest version of a package in an RPM repository.
//!
//! `repomd.xml` names the primary metadata (gz, xz, zst or plain); it is streamed through its
//! decompressor and parsed once per repomd revision, keeping only the newest EVR of each
//! package name (rpm ordering, from the rpm-version crate).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};

use quick_xml::Reader;
use quick_xml::events::Event as Xml;
use rpm_version::Evr;

use super::LookupError;
use super::http::{failed, read_capped};
use super::koji::resolve_entity;
use crate::core::package::{PackageVersion, is_newer};

const MAX_REPOMD: usize = 1024 * 1024;
/// Compressed primary metadata; Fedora's largest is well under this.
const MAX_PRIMARY: usize = 128 * 1024 * 1024;
/// Decompressed primary metadata (a zip bomb stops here).
const MAX_PRIMARY_XML: u64 = 2 * 1024 * 1024 * 1024;

type Newest = Arc<HashMap<String, PackageVersion>>;

/// Parsed primaries by repository URL, with the repomd revision they came from.
#[derive(Default)]
pub struct Cache {
    repos: Mutex<HashMap<String, (String, Newest)>>,
}

impl Cache {
    fn get(&self, url: &str, revision: &str) -> Option<Newest> {
        let repos = self.repos.lock().unwrap_or_else(|p| p.into_inner());
        repos
            .get(url)
            .filter(|(r, _)| r == revision)
            .map(|(_, n)| n.clone())
    }

    fn put(&self, url: &str, revision: String, newest: Newest) {
        let mut repos = self.repos.lock().unwrap_or_else(|p| p.into_inner());
        repos.insert(url.to_owned(), (revision, newest));
    }
}

async fn get(
    client: &reqwest::Client,
    url: &str,
    cap: usize,
    what: &'static str,
) -> Result<Vec<u8>, LookupError> {
    let url = reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or(LookupError::BadUrl {
            what: "the repository URL",
        })?;
    let resp = client.get(url).send().await.map_err(failed)?;
    let status = resp.status();
    if !status.is_success() {
        return Err(LookupError::FileStatus {
            status: status.as_u16(),
            what,
        });
    }
    read_capped(resp, cap).await
}

/// The newest version of `package` in the repository at `base_url`; `None` when the
/// repository does not hold it.
pub async fn newest(
    client: &reqwest::Client,
    cache: &Cache,
    base_url: &str,
    package: &str,
) -> Result<Option<PackageVersion>, LookupError> {
    let base = base_url.trim_end_matches('/');
    let repomd = get(
        client,
        &format!("{base}/repodata/repomd.xml"),
        MAX_REPOMD,
        "repomd.xml",
    )
    .await?;
    let md = parse_repomd(&repomd).map_err(|detail| {
        tracing::debug!(error = %detail, "unreadable repomd.xml");
        LookupError::Unreadable {
            what: "repomd.xml",
            detail,
        }
    })?;
    // The href carries the primary's checksum: together with the revision it names the
    // content exactly.
    let key = format!("{} {}", md.revision, md.primary_href);
    if let Some(newest) = cache.get(base, &key) {
        return Ok(newest.get(package).cloned());
    }
    let href = md.primary_href.clone();
    let body = get(
        client,
        &format!("{base}/{href}"),
        MAX_PRIMARY,
        "primary metadata",
    )
    .await?;
    let newest = tokio::task::spawn_blocking(move || parse_primary(&href, &body))
        .await
        .map_err(|_| LookupError::ParserGone {
            what: "primary metadata",
        })?
        .map_err(|detail| {
            tracing::debug!(error = %detail, "unreadable primary metadata");
            LookupError::Unreadable {
                what: "the primary metadata",
                detail,
            }
        })?;
    let newest = Arc::new(newest);
    cache.put(base, key, newest.clone());
    Ok(newest.get(package).cloned())
}

#[derive(Debug, PartialEq, Eq)]
pub struct RepoMd {
    pub revision: String,
    pub primary_href: String,
}

pub fn parse_repomd(xml: &[u8]) -> Result<RepoMd, String> {
    let mut r = Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut revision = String::new();
    let mut in_revision = false;
    let mut in_primary = false;
    let mut href = None;
    loop {
        match r.read_event_into(&mut buf).map_err(|e| e.to_string())? {
            Xml::Start(e) if e.name().as_ref() == b"revision" => in_revision = true,
            Xml::End(e) if e.name().as_ref() == b"revision" => in_revision = false,
            Xml::Text(t) if in_revision => {
                revision.push_str(&t.decode().map_err(|e| e.to_string())?);
            }
            Xml::Start(e) if e.name().as_ref() == b"data" => {
                in_primary = attr(&e, b"type")?.as_deref() == Some("primary");
            }
            Xml::End(e) if e.name().as_ref() == b"data" => in_primary = false,
            Xml::Empty(e) | Xml::Start(e) if in_primary && e.name().as_ref() == b"location" => {
                href = attr(&e, b"href")?;
            }
            Xml::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(RepoMd {
        revision: revision.trim().to_owned(),
        primary_href: href.ok_or("no primary data in repomd.xml")?,
    })
}

fn attr(e: &quick_xml::events::BytesStart<'_>, name: &[u8]) -> Result<Option<String>, String> {
    for a in e.attributes() {
        let a = a.map_err(|e| e.to_string())?;
        if a.key.as_ref() == name {
            return Ok(Some(
                a.unescape_value().map_err(|e| e.to_string())?.into_owned(),
            ));
        }
    }
    Ok(None)
}

/// Opens `body` with the decompressor its name calls for.
fn decompressor<'a>(href: &str, body: &'a [u8]) -> Result<Box<dyn Read + 'a>, String> {
    Ok(if href.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(body))
    } else if href.ends_with(".xz") {
        let stream = liblzma::stream::Stream::new_stream_decoder(XZ_MEMORY_LIMIT, 0)
            .map_err(|e| e.to_string())?;
        Box::new(liblzma::read::XzDecoder::new_stream(body, stream))
    } else if href.ends_with(".zst") {
        Box::new(zstd::stream::read::Decoder::new(body).map_err(|e| e.to_string())?)
    } else if href.ends_with(".xml") {
        Box::new(body)
    } else {
        return Err(format!("unknown compression for {href}"));
    })
}

/// Reads primary metadata, keeping the newest version of every package name.
pub fn parse_primary(href: &str, body: &[u8]) -> Result<HashMap<String, PackageVersion>, String> {
    parse_primary_within(href, body, MAX_PRIMARY_XML)
}

fn parse_primary_within(
    href: &str,
    body: &[u8],
    max_xml: u64,
) -> Result<HashMap<String, PackageVersion>, String> {
    let input = BufReader::new(Capped {
        inner: decompressor(href, body)?,
        left: max_xml,
        max: max_xml,
    });
    newest_by_name(input)
}

/// Memory the xz decoder may use: real metadata needs at most 65 MiB (preset 9); a crafted
/// header may ask for 1.5 GiB.
const XZ_MEMORY_LIMIT: u64 = 256 * 1024 * 1024;

/// A reader that fails once more than `left` bytes came out of it: a compression bomb is
/// refused with a clear error instead of being parsed as a truncated file.
struct Capped<R> {
    inner: R,
    left: u64,
    max: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            std::io::Error::other(format!(
                "primary metadata larger than {} bytes uncompressed; refused",
                self.max
            ))
        })?;
        Ok(n)
    }
}

fn newest_by_name(input: impl BufRead) -> Result<HashMap<String, PackageVersion>, String> {
    let mut r = Reader::from_reader(input);
    let mut buf = Vec::new();
    let mut newest: HashMap<String, PackageVersion> = HashMap::new();
    let mut cur: Option<PackageVersion> = None;
    // Which text field of the current package is open.
    let mut field: Option<&'static str> = None;
    loop {
        match r.read_event_into(&mut buf).map_err(|e| e.to_string())? {
            Xml::Start(e) => match e.name().as_ref() {
                b"package" => {
                    cur = Some(PackageVersion {
                        name: String::new(),
                        epoch: "0".into(),
                        version: String::new(),
                        release: String::new(),
                        arch: String::new(),
                        evr: String::new(),
                    });
                }
                b"name" if cur.is_some() => field = Some("name"),
                b"arch" if cur.is_some() => field = Some("arch"),
                b"version" => version_attrs(&e, cur.as_mut())?,
                _ => {}
            },
            Xml::Empty(e) if e.name().as_ref() == b"version" => version_attrs(&e, cur.as_mut())?,
            Xml::Text(t) => {
                if let (Some(f), Some(p)) = (field, cur.as_mut()) {
                    let t = t.decode().map_err(|e| e.to_string())?;
                    push_field(p, f, &t);
                }
            }
            Xml::GeneralRef(g) => {
                if let (Some(f), Some(p)) = (field, cur.as_mut()) {
                    push_field(p, f, &resolve_entity(&g)?);
                }
            }
            Xml::End(e) => match e.name().as_ref() {
                b"name" | b"arch" => field = None,
                b"package" => {
                    if let Some(mut p) = cur.take() {
                        p.evr = Evr::new(p.epoch.as_str(), p.version.as_str(), p.release.as_str())
                            .evr();
                        keep_newest(&mut newest, p);
                    }
                }
                _ => {}
            },
            Xml::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if cur.is_some() {
        return Err("primary metadata ends inside a package".into());
    }
    Ok(newest)
}

fn push_field(p: &mut PackageVersion, field: &str, text: &str) {
    match field {
        "name" => p.name.push_str(text),
        _ => p.arch.push_str(text),
    }
}

fn version_attrs(
    e: &quick_xml::events::BytesStart<'_>,
    cur: Option<&mut PackageVersion>,
) -> Result<(), String> {
    let Some(p) = cur else { return Ok(()) };
    if let Some(epoch) = attr(e, b"epoch")?.filter(|x| !x.is_empty()) {
        p.epoch = epoch;
    }
    p.version = attr(e, b"ver")?.unwrap_or_default();
    p.release = attr(e, b"rel")?.unwrap_or_default();
    Ok(())
}

fn keep_newest(newest: &mut HashMap<String, PackageVersion>, p: PackageVersion) {
    match newest.get(&p.name) {
        Some(old) if !is_newer(&p, old) => {}
        _ => {
            newest.insert(p.name.clone(), p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPOS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/lookups/repodata"
    );

    fn primary_of(repo: &str) -> HashMap<String, PackageVersion> {
        let dir = format!("{REPOS}/{repo}");
        let md =
            parse_repomd(&std::fs::read(format!("{dir}/repodata/repomd.xml")).unwrap()).unwrap();
        let body = std::fs::read(format!("{dir}/{}", md.primary_href)).unwrap();
        parse_primary(&md.primary_href, &body).unwrap()
    }

    #[test]
    fn newest_evr_matches_the_expected_list() {
        let newest = primary_of("libdnf_modules_all_x86_64");
        let expected = std::fs::read_to_string(format!(
            "{REPOS}/libdnf_modules_all_x86_64.EXPECTED_NEWEST.txt"
        ))
        .unwrap();
        let mut checked = 0;
        for line in expected
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let (name, evr) = line.split_once(' ').unwrap();
            assert_eq!(newest[name].evr, evr, "{name}");
            checked += 1;
        }
        assert!(checked >= 20, "{checked}");
        assert_eq!(newest["httpd"].version, "2.4.25");
        assert_eq!(newest["libnghttp2"].release, "1.1");
    }

    #[test]
    fn zstd_primary_gives_the_same_answer() {
        let gz = primary_of("libdnf_modules_all_x86_64");
        let zst = primary_of("libdnf_modules_all_x86_64.zst-DERIVED");
        assert_eq!(gz, zst);
    }

    #[test]
    fn xz_and_plain_primaries_are_read() {
        let dir = format!("{REPOS}/createrepo_c_repo_koji_01");
        let md =
            parse_repomd(&std::fs::read(format!("{dir}/repodata/repomd.xml")).unwrap()).unwrap();
        let gz = std::fs::read(format!("{dir}/{}", md.primary_href)).unwrap();
        let mut xml = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut xml)
            .unwrap();
        let plain = parse_primary("primary.xml", &xml).unwrap();
        assert_eq!(plain["dwm"].evr, "0:6.1-7.fc28");
        let mut xz = Vec::new();
        liblzma::read::XzEncoder::new(&xml[..], 6)
            .read_to_end(&mut xz)
            .unwrap();
        assert_eq!(parse_primary("primary.xml.xz", &xz).unwrap(), plain);
    }

    #[test]
    fn a_compression_bomb_is_refused_with_a_clear_error() {
        use std::io::Write as _;
        // 50 MB of blanks inside <metadata> compress to about 50 kB.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(b"<metadata>").unwrap();
        let blanks = vec![b' '; 1024 * 1024];
        for _ in 0..50 {
            gz.write_all(&blanks).unwrap();
        }
        gz.write_all(b"</metadata>").unwrap();
        let gz = gz.finish().unwrap();
        assert!(gz.len() < 200_000, "{}", gz.len());
        let err = parse_primary_within("p.xml.gz", &gz, 10 * 1024 * 1024).unwrap_err();
        assert!(
            err.contains("larger than 10485760 bytes uncompressed"),
            "{err}"
        );
        // Within the cap, the same document is read (and has no packages).
        assert!(
            parse_primary_within("p.xml.gz", &gz, 60 * 1024 * 1024)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn damaged_metadata_is_an_error() {
        assert!(parse_primary("p.xml.gz", b"not gzip").is_err());
        assert!(parse_primary("p.xml", b"<metadata><package><name>x</name>").is_err());
        assert!(parse_repomd(b"<repomd><revision>1</revision></repomd>").is_err());
    }
}
