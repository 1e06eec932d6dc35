//! Rendering requests with minijinja (secrets stay placeholders).

use minijinja::Value;

use super::{ActionSpec, BodySpec, Declarative, Request, RequestBody};

impl Declarative {
    pub(super) fn render(
        &self,
        source: &str,
        ctx: &serde_json::Value,
    ) -> Result<String, minijinja::Error> {
        self.env.render_str(source, Value::from_serialize(ctx))
    }

    fn render_json(
        &self,
        v: &serde_json::Value,
        ctx: &serde_json::Value,
    ) -> Result<serde_json::Value, minijinja::Error> {
        Ok(match v {
            serde_json::Value::String(s) => serde_json::Value::String(self.render(s, ctx)?),
            serde_json::Value::Array(items) => serde_json::Value::Array(
                items
                    .iter()
                    .map(|i| self.render_json(i, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            serde_json::Value::Object(m) => serde_json::Value::Object(
                m.iter()
                    .map(|(k, i)| Ok((k.clone(), self.render_json(i, ctx)?)))
                    .collect::<Result<_, minijinja::Error>>()?,
            ),
            other => other.clone(),
        })
    }

    fn render_pairs(
        &self,
        pairs: &[(String, String)],
        ctx: &serde_json::Value,
    ) -> Result<Vec<(String, String)>, minijinja::Error> {
        pairs
            .iter()
            .map(|(k, v)| Ok((k.clone(), self.render(v, ctx)?)))
            .collect()
    }

    pub(super) fn render_request(
        &self,
        action: &ActionSpec,
        ctx: &serde_json::Value,
    ) -> Result<Request, minijinja::Error> {
        Ok(match action {
            ActionSpec::Http(h) => Request::Http {
                method: h.method.clone(),
                url: self.render(&h.url, &in_url(ctx))?.trim().to_owned(),
                headers: self.render_pairs(&h.headers, ctx)?,
                query: self.render_pairs(&h.query, ctx)?,
                body: match &h.body {
                    BodySpec::None => RequestBody::None,
                    BodySpec::Json(v) => RequestBody::Json(self.render_json(v, ctx)?),
                    BodySpec::Form(f) => RequestBody::Form(self.render_pairs(f, ctx)?),
                    BodySpec::Text(t) => RequestBody::Text(self.render(t, ctx)?),
                },
            },
            ActionSpec::Koji(k) => {
                let mut params = k
                    .params
                    .iter()
                    .map(|p| self.render_json(p, ctx))
                    .collect::<Result<Vec<_>, _>>()?;
                if !k.kwargs.is_empty() {
                    let mut m = serde_json::Map::new();
                    for (name, v) in &k.kwargs {
                        m.insert(name.clone(), self.render_json(v, ctx)?);
                    }
                    // Koji reads keyword arguments from a struct flagged `__starstar`.
                    m.insert("__starstar".into(), serde_json::Value::Bool(true));
                    params.push(serde_json::Value::Object(m));
                }
                Request::Koji {
                    hub: self.render(&k.hub, ctx)?.trim().to_owned(),
                    method: k.method.clone(),
                    params,
                }
            }
            ActionSpec::Repodata(r) => Request::Repodata {
                url: self.render(&r.url, &in_url(ctx))?.trim().to_owned(),
                package: self.render(&r.package, ctx)?.trim().to_owned(),
            },
        })
    }
}

/// The context a URL is rendered with: every value that comes from the caller (`args`,
/// `caller`) is percent-encoded segment by segment, so that an argument keeps its `/` but can
/// never add a `?`, a `#`, a `%` escape of its own or a `.`/`..` segment.
fn in_url(ctx: &serde_json::Value) -> serde_json::Value {
    let mut ctx = ctx.clone();
    for part in ["args", "caller"] {
        if let Some(serde_json::Value::Object(m)) = ctx.get_mut(part) {
            for v in m.values_mut() {
                if let serde_json::Value::String(s) = v {
                    *s = path_segments(s);
                }
            }
        }
    }
    ctx
}

/// Characters left as they are in a path segment: RFC 3986's unreserved ones.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn path_segments(value: &str) -> String {
    value
        .split('/')
        .map(|segment| match segment {
            "." => "%2E".to_owned(),
            ".." => "%2E%2E".to_owned(),
            s => percent_encoding::utf8_percent_encode(s, SEGMENT).to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::path_segments;

    #[test]
    fn arguments_stay_inside_their_path_segments() {
        assert_eq!(
            path_segments("fedora-infra/ansible"),
            "fedora-infra/ansible"
        );
        assert_eq!(path_segments("1839234"), "1839234");
        assert_eq!(path_segments("../../admin"), "%2E%2E/%2E%2E/admin");
        assert_eq!(path_segments("x?token=1#f"), "x%3Ftoken%3D1%23f");
        assert_eq!(path_segments("a%2Fb c"), "a%252Fb%20c");
        assert_eq!(path_segments("kůň"), "k%C5%AF%C5%88");
    }
}
