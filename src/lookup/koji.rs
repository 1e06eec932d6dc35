//! The `koji` action: an XML-RPC call to a Koji hub.
//!
//! Koji's marshaller sends `<nil/>` for None and `<i8>` for integers past 2^31-1, and answers
//! faults with HTTP 200; values become JSON (`struct` -> object, `array` -> array,
//! `dateTime.iso8601` and `base64` -> string) for the reply templates.

use quick_xml::Reader;
use quick_xml::escape::escape;
use quick_xml::events::Event as Xml;

use super::LookupError;
use super::http::{failed, read_capped};

/// listTagged on a big tag is large; past this the command gets its error reply.
pub const MAX_RESPONSE: usize = 8 * 1024 * 1024;

/// Calls `method` on the hub; a fault the hub answers with is [`LookupError::KojiFault`].
pub async fn call(
    client: &reqwest::Client,
    hub: &str,
    method: &str,
    params: &[serde_json::Value],
) -> Result<serde_json::Value, LookupError> {
    let url = match reqwest::Url::parse(hub) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u,
        _ => {
            return Err(LookupError::BadUrl {
                what: "the Koji hub",
            });
        }
    };
    let resp = client
        .post(url)
        .header("Content-Type", "text/xml")
        .body(method_call(method, params))
        .send()
        .await
        .map_err(failed)?;
    let status = resp.status();
    if !status.is_success() {
        return Err(LookupError::HubStatus {
            status: status.as_u16(),
            reason: status.canonical_reason(),
        });
    }
    let body = read_capped(resp, MAX_RESPONSE).await?;
    match std::str::from_utf8(&body)
        .map_err(|_| "not UTF-8".to_owned())
        .and_then(parse_response)
    {
        Ok(Ok(v)) => Ok(v),
        Ok(Err((code, message))) => Err(LookupError::KojiFault { code, message }),
        Err(detail) => {
            tracing::debug!(error = %detail, "unreadable XML-RPC response");
            Err(LookupError::NotXmlRpc { detail })
        }
    }
}

/// The `<methodCall>` document.
pub fn method_call(method: &str, params: &[serde_json::Value]) -> String {
    let mut s = String::from("<?xml version=\"1.0\"?>\n<methodCall>\n<methodName>");
    s.push_str(&escape(method));
    s.push_str("</methodName>\n<params>\n");
    for p in params {
        s.push_str("<param>\n");
        write_value(&mut s, p);
        s.push_str("</param>\n");
    }
    s.push_str("</params>\n</methodCall>\n");
    s
}

fn write_value(s: &mut String, v: &serde_json::Value) {
    s.push_str("<value>");
    match v {
        serde_json::Value::Null => s.push_str("<nil/>"),
        serde_json::Value::Bool(b) => {
            s.push_str(if *b {
                "<boolean>1</boolean>"
            } else {
                "<boolean>0</boolean>"
            });
        }
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) if i32::try_from(i).is_ok() => s.push_str(&format!("<int>{i}</int>")),
            Some(i) => s.push_str(&format!("<i8>{i}</i8>")),
            None => s.push_str(&format!("<double>{}</double>", n.as_f64().unwrap_or(0.0))),
        },
        serde_json::Value::String(t) => {
            s.push_str("<string>");
            s.push_str(&escape(t.as_str()));
            s.push_str("</string>");
        }
        serde_json::Value::Array(items) => {
            s.push_str("<array><data>\n");
            for i in items {
                write_value(s, i);
            }
            s.push_str("</data></array>");
        }
        serde_json::Value::Object(m) => {
            s.push_str("<struct>\n");
            for (k, i) in m {
                s.push_str("<member>\n<name>");
                s.push_str(&escape(k.as_str()));
                s.push_str("</name>\n");
                write_value(s, i);
                s.push_str("</member>\n");
            }
            s.push_str("</struct>");
        }
    }
    s.push_str("</value>\n");
}

#[derive(Debug, PartialEq)]
enum Tok {
    Start(String),
    End(String),
    Empty(String),
    Text(String),
    Eof,
}

struct Parser<'a> {
    r: Reader<&'a [u8]>,
    peeked: Option<Tok>,
    /// How many `<value>`s are open.
    depth: usize,
}

/// How deep arrays and structs may nest in a response; Koji's answers use a handful.
const MAX_DEPTH: usize = 64;

/// `Ok(Ok(value))`, `Ok(Err((faultCode, faultString)))`, or `Err` for a document that is
/// not an XML-RPC response.
pub fn parse_response(xml: &str) -> Result<Result<serde_json::Value, (i64, String)>, String> {
    let mut p = Parser {
        r: Reader::from_str(xml),
        peeked: None,
        depth: 0,
    };
    p.expect_start("methodResponse")?;
    match p.next_struct()? {
        Tok::Start(n) if n == "params" => {
            p.expect_start("param")?;
            p.expect_start("value")?;
            let v = p.value()?;
            p.expect_end("param")?;
            p.expect_end("params")?;
            Ok(Ok(v))
        }
        Tok::Start(n) if n == "fault" => {
            p.expect_start("value")?;
            let v = p.value()?;
            let code = v.get("faultCode").and_then(|c| c.as_i64()).unwrap_or(0);
            let message = v
                .get("faultString")
                .and_then(|c| c.as_str())
                .unwrap_or("")
                .to_owned();
            Ok(Err((code, message)))
        }
        other => Err(format!("expected params or fault, found {other:?}")),
    }
}

impl Parser<'_> {
    fn raw(&mut self) -> Result<Tok, String> {
        if let Some(t) = self.peeked.take() {
            return Ok(t);
        }
        loop {
            let ev = self.r.read_event().map_err(|e| e.to_string())?;
            let name = |n: &[u8]| String::from_utf8_lossy(n).into_owned();
            return Ok(match ev {
                Xml::Start(e) => Tok::Start(name(e.name().as_ref())),
                Xml::End(e) => Tok::End(name(e.name().as_ref())),
                Xml::Empty(e) => Tok::Empty(name(e.name().as_ref())),
                Xml::Text(t) => Tok::Text(t.decode().map_err(|e| e.to_string())?.into_owned()),
                Xml::CData(t) => Tok::Text(t.decode().map_err(|e| e.to_string())?.into_owned()),
                Xml::GeneralRef(r) => Tok::Text(resolve_entity(&r)?),
                Xml::Eof => Tok::Eof,
                _ => continue,
            });
        }
    }

    /// The next token that is not whitespace between elements.
    fn next_struct(&mut self) -> Result<Tok, String> {
        loop {
            match self.raw()? {
                Tok::Text(t) if t.trim().is_empty() => continue,
                t => return Ok(t),
            }
        }
    }

    fn expect_start(&mut self, want: &str) -> Result<(), String> {
        match self.next_struct()? {
            Tok::Start(n) if n == want => Ok(()),
            other => Err(format!("expected <{want}>, found {other:?}")),
        }
    }

    fn expect_end(&mut self, want: &str) -> Result<(), String> {
        match self.next_struct()? {
            Tok::End(n) if n == want => Ok(()),
            other => Err(format!("expected </{want}>, found {other:?}")),
        }
    }

    /// Text up to the closing tag of the element just opened (entities resolved).
    fn text_until_end(&mut self, tag: &str) -> Result<String, String> {
        let mut s = String::new();
        loop {
            match self.raw()? {
                Tok::Text(t) => s.push_str(&t),
                Tok::End(n) if n == tag => return Ok(s),
                other => return Err(format!("unexpected {other:?} in <{tag}>")),
            }
        }
    }

    /// A value whose `<value>` was just opened; consumes its `</value>`.
    fn value(&mut self) -> Result<serde_json::Value, String> {
        // Arrays and structs nest values; a hostile hub could nest them until the stack ends.
        if self.depth >= MAX_DEPTH {
            return Err(format!("values nested deeper than {MAX_DEPTH}"));
        }
        self.depth += 1;
        let v = self.value_inside();
        self.depth -= 1;
        v
    }

    fn value_inside(&mut self) -> Result<serde_json::Value, String> {
        let mut text = String::new();
        let v = loop {
            match self.raw()? {
                Tok::Text(t) => text.push_str(&t),
                // An untyped value is a string.
                Tok::End(n) if n == "value" => return Ok(serde_json::Value::String(text)),
                Tok::Empty(t) => break empty_value(&t)?,
                Tok::Start(t) => break self.typed(&t)?,
                other => return Err(format!("unexpected {other:?} in <value>")),
            }
        };
        self.expect_end("value")?;
        Ok(v)
    }

    fn typed(&mut self, t: &str) -> Result<serde_json::Value, String> {
        Ok(match t {
            "string" | "dateTime.iso8601" | "base64" => {
                serde_json::Value::String(self.text_until_end(t)?)
            }
            "int" | "i4" | "i8" | "i2" | "i1" => {
                let s = self.text_until_end(t)?;
                s.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("bad integer {s:?}"))?
                    .into()
            }
            "boolean" => {
                let s = self.text_until_end(t)?;
                serde_json::Value::Bool(s.trim() == "1")
            }
            "double" => {
                let s = self.text_until_end(t)?;
                let f: f64 = s.trim().parse().map_err(|_| format!("bad double {s:?}"))?;
                serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, Into::into)
            }
            "nil" => {
                self.text_until_end(t)?;
                serde_json::Value::Null
            }
            "array" => {
                let mut items = Vec::new();
                match self.next_struct()? {
                    Tok::Empty(n) if n == "data" => {}
                    Tok::Start(n) if n == "data" => loop {
                        match self.next_struct()? {
                            Tok::Start(n) if n == "value" => items.push(self.value()?),
                            Tok::End(n) if n == "data" => break,
                            other => return Err(format!("unexpected {other:?} in <data>")),
                        }
                    },
                    other => return Err(format!("unexpected {other:?} in <array>")),
                }
                self.expect_end("array")?;
                serde_json::Value::Array(items)
            }
            "struct" => {
                let mut m = serde_json::Map::new();
                loop {
                    match self.next_struct()? {
                        Tok::Start(n) if n == "member" => {
                            self.expect_start("name")?;
                            let key = self.text_until_end("name")?;
                            self.expect_start("value")?;
                            let v = self.value()?;
                            self.expect_end("member")?;
                            m.insert(key, v);
                        }
                        Tok::End(n) if n == "struct" => break,
                        other => return Err(format!("unexpected {other:?} in <struct>")),
                    }
                }
                serde_json::Value::Object(m)
            }
            other => return Err(format!("unknown XML-RPC type <{other}>")),
        })
    }
}

fn empty_value(t: &str) -> Result<serde_json::Value, String> {
    Ok(match t {
        "nil" => serde_json::Value::Null,
        "string" | "dateTime.iso8601" | "base64" => serde_json::Value::String(String::new()),
        "array" => serde_json::Value::Array(Vec::new()),
        "struct" => serde_json::Value::Object(serde_json::Map::new()),
        other => return Err(format!("empty <{other}/> has no value")),
    })
}

/// `&amp;`, `&#38;` and friends, which quick-xml reports apart from the text around them.
pub fn resolve_entity(r: &quick_xml::events::BytesRef<'_>) -> Result<String, String> {
    if let Some(c) = r.resolve_char_ref().map_err(|e| e.to_string())? {
        return Ok(c.to_string());
    }
    let name = r.decode().map_err(|e| e.to_string())?;
    Ok(match name.as_ref() {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        other => return Err(format!("unknown entity &{other};")),
    }
    .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/lookups/koji");

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
    }

    #[test]
    fn reads_get_latest_builds_with_nil_and_ints() {
        let v = parse_response(&fixture("getLatestBuilds-response.SYNTHETIC.xml"))
            .unwrap()
            .unwrap();
        let first = &v[0];
        assert_eq!(first["tag_name"], "f40-updates");
        assert_eq!(first["epoch"], serde_json::Value::Null);
        assert_eq!(first["draft"], false);
        assert!(first["nvr"].as_str().unwrap().contains("2.31.0-4.fc40"));
        assert!(first["id"].is_i64());
    }

    #[test]
    fn reads_real_brew_responses() {
        let v = parse_response(&fixture("kojiji_getBuild-response.xml"))
            .unwrap()
            .unwrap();
        assert!(v.is_object());
        let v = parse_response(&fixture("kojiji_getLatestRPMS-response.xml"))
            .unwrap()
            .unwrap();
        assert!(v.is_array());
    }

    #[test]
    fn reads_faults() {
        let f = parse_response(&fixture("getLatestBuilds-fault-no-such-tag.SYNTHETIC.xml"))
            .unwrap()
            .unwrap_err();
        assert_eq!(
            f,
            (1000, "No such entry in table tag: f99-updates".to_owned())
        );
    }

    #[test]
    fn i8_entities_and_untyped_values() {
        let xml = "<?xml version='1.0'?><methodResponse><params><param><value><struct>\
            <member><name>big</name><value><i8>4294967296</i8></value></member>\
            <member><name>s</name><value>a &amp; b&#33;</value></member>\
            <member><name>e</name><value><array><data/></array></value></member>\
            </struct></value></param></params></methodResponse>";
        let v = parse_response(xml).unwrap().unwrap();
        assert_eq!(v["big"], 4_294_967_296_i64);
        assert_eq!(v["s"], "a & b!");
        assert_eq!(v["e"], serde_json::json!([]));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let depth = 100_000;
        let xml = format!(
            "<methodResponse><params><param><value>{}{}</value></param></params></methodResponse>",
            "<array><data><value>".repeat(depth),
            "</value></data></array>".repeat(depth)
        );
        let err = parse_response(&xml).unwrap_err();
        assert!(err.contains("nested deeper than 64"), "{err}");
        // Up to the limit is fine.
        let ok = format!(
            "<methodResponse><params><param><value>{}<int>1</int>{}</value></param></params></methodResponse>",
            "<array><data><value>".repeat(60),
            "</value></data></array>".repeat(60)
        );
        assert!(parse_response(&ok).unwrap().is_ok());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_response("<html>oops</html>").is_err());
        assert!(parse_response("").is_err());
        assert!(parse_response("<methodResponse><params><param><value><int>x</int>").is_err());
    }

    #[test]
    fn method_call_matches_kojis_request_shape() {
        let body = method_call("getLatestBuilds", &[serde_json::json!("f40-updates")]);
        let want = fixture("getLatestBuilds-request.SYNTHETIC.xml");
        let squash = |s: &str| s.split_whitespace().collect::<String>().replace("'", "\"");
        assert_eq!(squash(&body), squash(&want));
        let kw = method_call(
            "listTagged",
            &[
                serde_json::json!("t<1>"),
                serde_json::json!({"latest": true, "n": 5_000_000_000_i64}),
            ],
        );
        assert!(kw.contains("<string>t&lt;1&gt;</string>"));
        assert!(kw.contains("<i8>5000000000</i8>"));
        assert!(kw.contains("<boolean>1</boolean>"));
    }
}
