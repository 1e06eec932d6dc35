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
                url: self.render(&h.url, ctx)?.trim().to_owned(),
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
                url: self.render(&r.url, ctx)?.trim().to_owned(),
                package: self.render(&r.package, ctx)?.trim().to_owned(),
            },
        })
    }
}
