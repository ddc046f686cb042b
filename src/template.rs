//! URL templates: `https://host/log?id={id}` compiled once into literal parts and holes, then
//! expanded per item into a reused buffer (no allocation per request once the buffer has grown).

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Key,
}

/// A compiled template with at least one `{id}` hole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    source: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("--url {0}: must contain {{id}}, e.g. http://host/log?id={{id}}")]
    NoPlaceholder(String),
    #[error("--url {0}: only http:// and https:// URLs are supported")]
    Scheme(String),
    #[error("--url {0}: not a valid URL once {{id}} is filled in ({1})")]
    Invalid(String, String),
}

const PLACEHOLDER: &str = "{id}";

impl Template {
    /// Compiles `source`, checking that it has a placeholder and that an expansion is a valid
    /// absolute http(s) URL — so a bad template fails before any worker starts.
    pub fn compile(source: &str) -> Result<Self, TemplateError> {
        if !source.contains(PLACEHOLDER) {
            return Err(TemplateError::NoPlaceholder(source.to_string()));
        }
        let mut parts = Vec::new();
        for (k, literal) in source.split(PLACEHOLDER).enumerate() {
            if k > 0 {
                parts.push(Part::Key);
            }
            if !literal.is_empty() {
                parts.push(Part::Literal(literal.to_string()));
            }
        }
        let template = Template {
            parts,
            source: source.to_string(),
        };
        template.check_expansion()?;
        Ok(template)
    }

    fn check_expansion(&self) -> Result<(), TemplateError> {
        let mut url = String::new();
        self.expand_into("0", &mut url);
        let uri: http::Uri = url.parse().map_err(|e: http::uri::InvalidUri| {
            TemplateError::Invalid(self.source.clone(), e.to_string())
        })?;
        match uri.scheme_str() {
            Some("http") | Some("https") if uri.host().is_some() => Ok(()),
            _ => Err(TemplateError::Scheme(self.source.clone())),
        }
    }

    /// Writes the template with every `{id}` replaced by `key` into `out` (cleared first).
    pub fn expand_into(&self, key: &str, out: &mut String) {
        out.clear();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Key => out.push_str(key),
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_every_placeholder_into_a_reused_buffer() {
        let t = Template::compile("http://h:8080/{id}/log?id={id}&x=1").expect("valid template");
        let mut out = String::from("stale contents");
        t.expand_into("42", &mut out);
        assert_eq!(out, "http://h:8080/42/log?id=42&x=1");
        t.expand_into("7", &mut out);
        assert_eq!(out, "http://h:8080/7/log?id=7&x=1");
    }

    #[test]
    fn placeholder_at_the_end_and_https() {
        let t = Template::compile("https://example.org/log?id={id}").expect("valid template");
        let mut out = String::new();
        t.expand_into("123", &mut out);
        assert_eq!(out, "https://example.org/log?id=123");
    }

    #[test]
    fn rejects_templates_without_placeholder_or_with_bad_scheme() {
        assert!(matches!(
            Template::compile("http://h/log?id=1"),
            Err(TemplateError::NoPlaceholder(_))
        ));
        assert!(matches!(
            Template::compile("ftp://h/{id}"),
            Err(TemplateError::Scheme(_))
        ));
        assert!(matches!(
            Template::compile("/log?id={id}"),
            Err(TemplateError::Scheme(_))
        ));
        assert!(matches!(
            Template::compile("http://h/log?id={id} x"),
            Err(TemplateError::Invalid(..))
        ));
    }
}
