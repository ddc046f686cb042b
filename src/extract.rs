//! `--extract NAME=EXPR`: fields taken out of each answer's body into columns of their own, in
//! the workers, so that only the fields travel the pipe.
//!
//! Three kinds of expression: a JSON Pointer (RFC 6901, `EXPR` starts with `/`), a jq filter
//! (`jq:FILTER`, run by jaq; its first output) and a regular expression (`re:REGEX`, its first
//! capture group, or the whole match when it has none). A value is written as text: a string as
//! it is, another scalar as JSON text (`true`, `2.5`), an array or object as compact JSON. A
//! body that is not JSON, an absent path, JSON `null`, a jq filter with no output or an error,
//! and a regex that does not match all leave the cell empty; such misses are counted.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data};
use jaq_json::Val;

/// One `--extract` as given: the column's name and its expression.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExtractSpec {
    pub name: String,
    pub expr: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExtractError {
    #[error("--extract {0:?}: expected NAME=EXPR (EXPR: /json/pointer, jq:FILTER or re:REGEX)")]
    Form(String),
    #[error("--extract {0}: a JSON Pointer starts with `/`; use jq:… or re:… for other kinds")]
    Kind(String),
    #[error("--extract {0}: not a jq filter: {1}")]
    Jq(String, String),
    #[error("--extract {0}: not a regular expression: {1}")]
    Regex(String, String),
}

impl ExtractSpec {
    /// `NAME=EXPR`, the expression checked by compiling it.
    pub fn parse(text: &str) -> Result<ExtractSpec, ExtractError> {
        let (name, expr) = text
            .split_once('=')
            .filter(|(name, expr)| !name.trim().is_empty() && !expr.is_empty())
            .ok_or_else(|| ExtractError::Form(text.to_string()))?;
        let spec = ExtractSpec {
            name: name.trim().to_string(),
            expr: expr.to_string(),
        };
        Expr::compile(&spec)?;
        Ok(spec)
    }
}

type Filter = jaq_core::compile::Filter<jaq_core::Native<data::JustLut<Val>>>;

/// A compiled expression.
enum Expr {
    Pointer(String),
    Jq(Box<Filter>),
    Regex(regex::bytes::Regex),
}

impl Expr {
    fn compile(spec: &ExtractSpec) -> Result<Expr, ExtractError> {
        let text = spec.expr.as_str();
        let shown = || format!("{}={}", spec.name, spec.expr);
        if text.starts_with('/') {
            Ok(Expr::Pointer(text.to_string()))
        } else if let Some(filter) = text.strip_prefix("jq:") {
            compile_jq(filter)
                .map(|f| Expr::Jq(Box::new(f)))
                .map_err(|e| ExtractError::Jq(shown(), e))
        } else if let Some(pattern) = text.strip_prefix("re:") {
            regex::bytes::Regex::new(pattern)
                .map(Expr::Regex)
                .map_err(|e| ExtractError::Regex(shown(), one_line(&e.to_string())))
        } else {
            Err(ExtractError::Kind(shown()))
        }
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn compile_jq(code: &str) -> Result<Filter, String> {
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let modules = loader
        .load(&arena, File { code, path: () })
        .map_err(|errors| describe_load_errors(&errors))?;
    Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errors| {
            let names: Vec<String> = errors
                .iter()
                .flat_map(|(_, errs)| errs.iter().map(|(name, _)| name.to_string()))
                .collect();
            format!("undefined: {}", names.join(", "))
        })
}

/// jaq's parse errors as one line: what was expected, and where.
fn describe_load_errors(errors: &jaq_core::load::Errors<&str, ()>) -> String {
    let near = |rest: &str| {
        let rest: String = rest.chars().take(20).collect();
        if rest.is_empty() {
            "at the end".to_string()
        } else {
            format!("at `{rest}`")
        }
    };
    let described: Vec<String> = errors
        .iter()
        .flat_map(|(_, error)| match error {
            jaq_core::load::Error::Parse(errors) => errors
                .iter()
                .map(|(expect, rest)| format!("expected {} {}", expect.as_str(), near(rest)))
                .collect(),
            // (jaq's lexer expectations have no safe text for every case.)
            jaq_core::load::Error::Lex(errors) => errors
                .iter()
                .map(|(_, rest)| format!("unexpected token {}", near(rest)))
                .collect(),
            jaq_core::load::Error::Io(errors) => errors
                .iter()
                .map(|(_, message)| message.clone())
                .collect::<Vec<_>>(),
        })
        .collect();
    described.join("; ")
}

/// Every `--extract` of a run, compiled once per worker.
pub struct Extractor {
    exprs: Vec<Expr>,
}

impl Extractor {
    pub fn compile(specs: &[ExtractSpec]) -> Result<Extractor, ExtractError> {
        let exprs = specs.iter().map(Expr::compile).collect::<Result<_, _>>()?;
        Ok(Extractor { exprs })
    }

    pub fn is_empty(&self) -> bool {
        self.exprs.is_empty()
    }

    /// One value per expression (in order) from `body`, and how many were misses. The body is
    /// parsed as JSON at most once for each library that needs it.
    pub fn run(&self, body: &[u8]) -> (Vec<Option<Vec<u8>>>, u64) {
        let mut serde_doc: Option<Option<serde_json::Value>> = None;
        let mut jaq_doc: Option<Option<Val>> = None;
        let values: Vec<Option<Vec<u8>>> = self
            .exprs
            .iter()
            .map(|expr| match expr {
                Expr::Pointer(pointer) => serde_doc
                    .get_or_insert_with(|| serde_json::from_slice(body).ok())
                    .as_ref()
                    .and_then(|doc| doc.pointer(pointer))
                    .and_then(serde_text),
                Expr::Jq(filter) => jaq_doc
                    .get_or_insert_with(|| {
                        // jaq's reader recurses once per level: 10,000 of them overflowed
                        // the worker's stack and lost its whole shard.
                        nested_within(body, MAX_DEPTH)
                            .then(|| jaq_json::read::parse_single(body).ok())
                            .flatten()
                    })
                    .as_ref()
                    .and_then(|doc| first_output(filter, doc.clone())),
                Expr::Regex(re) => re.captures(body).and_then(|found| {
                    let group = found.get(1).or_else(|| found.get(0))?;
                    Some(group.as_bytes().to_vec())
                }),
            })
            .collect();
        let misses = values.iter().filter(|v| v.is_none()).count() as u64;
        (values, misses)
    }
}

/// Deepest nesting of arrays and objects a JSON body may have to be read: serde_json's own
/// limit (it reads 127 levels, refuses 128), so that pointers and jq filters miss on the same
/// bodies.
const MAX_DEPTH: usize = 127;

/// Whether the arrays and objects of `json` nest at most `limit` deep (brackets inside strings
/// do not count). Bytes that are not JSON are left for the parser to refuse.
fn nested_within(json: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in json {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

fn serde_text(value: &serde_json::Value) -> Option<Vec<u8>> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(text) => Some(text.clone().into_bytes()),
        other => Some(other.to_string().into_bytes()),
    }
}

fn first_output(filter: &Filter, input: Val) -> Option<Vec<u8>> {
    let ctx = Ctx::<data::JustLut<Val>>::new(&filter.lut, Vars::new([]));
    let first = filter.id.run((ctx, input)).next()?;
    match jaq_core::unwrap_valr(first).ok()? {
        Val::Null => None,
        Val::TStr(bytes) | Val::BStr(bytes) => Some(bytes.to_vec()),
        other => Some(other.to_string().into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extractor(specs: &[&str]) -> Extractor {
        let specs: Vec<ExtractSpec> = specs
            .iter()
            .map(|s| ExtractSpec::parse(s).expect("valid"))
            .collect();
        Extractor::compile(&specs).expect("compiles")
    }

    fn text(values: &[Option<Vec<u8>>]) -> Vec<Option<String>> {
        values
            .iter()
            .map(|v| v.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()))
            .collect()
    }

    const DOC: &[u8] = br#"{"user":{"name":"Ann \"A\"","admin":true},"items":[{"id":7},{"id":8}],"score":2.5,"tags":["a","b"],"none":null,"a/b":1}"#;

    #[test]
    fn pointers_jq_and_regex_give_text_scalars_and_compact_json() {
        let x = extractor(&[
            "name=/user/name",
            "first=/items/0/id",
            "admin=/user/admin",
            "score=/score",
            "tags=/tags",
            "escaped=/a~1b",
            "n=jq:.items | length",
            "ids=jq:[.items[].id]",
            "upper=jq:.user.name | ascii_upcase",
            "re=re:\"score\":([0-9.]+)",
            "whole=re:tag[a-z]",
        ]);
        let (values, misses) = x.run(DOC);
        assert_eq!(
            text(&values),
            [
                "Ann \"A\"",
                "7",
                "true",
                "2.5",
                "[\"a\",\"b\"]",
                "1",
                "2",
                "[7,8]",
                "ANN \"A\"",
                "2.5",
                "tags"
            ]
            .map(|s| Some(s.to_string()))
        );
        assert_eq!(misses, 0);
    }

    #[test]
    fn a_body_nested_past_the_limit_is_a_miss_not_a_crash() {
        let deep_object = "{\"a\":".repeat(20_000) + "1" + &"}".repeat(20_000);
        let deep_array = "[".repeat(10_000) + &"]".repeat(10_000);
        let extractor = extractor(&["x=jq:.id", "y=jq:.", "z=/a"]);
        for body in [deep_object, deep_array] {
            let (values, misses) = extractor.run(body.as_bytes());
            assert_eq!(text(&values), vec![None, None, None]);
            assert_eq!(misses, 3);
        }
        // At the limit it is read; brackets in strings do not count.
        let at_limit = "[".repeat(126) + "{\"id\":\"[[[{\"}" + &"]".repeat(126);
        let (values, misses) = extractor.run(at_limit.as_bytes());
        assert_eq!(misses, 2, "{:?}", text(&values));
        assert!(
            text(&values)[1]
                .as_deref()
                .is_some_and(|v| v.starts_with("[[["))
        );
        assert!(nested_within(br#"{"a":"\\\"[[["}"#, 1));
        let over = "[".repeat(127) + "{}" + &"]".repeat(127);
        assert_eq!(extractor.run(over.as_bytes()).1, 3);
        assert!(!nested_within(b"[[", 1));
    }

    #[test]
    fn misses_leave_the_cell_empty_and_are_counted() {
        let x = extractor(&["a=/nope", "b=/none", "c=jq:.nope", "d=jq:empty", "e=re:zzz"]);
        let (values, misses) = x.run(DOC);
        assert!(values.iter().all(Option::is_none), "{:?}", text(&values));
        assert_eq!(misses, 5);
        let x = extractor(&["a=/user/name", "b=jq:.user", "c=re:(id) 4"]);
        let (values, misses) = x.run(b"id 4 is not json");
        assert_eq!(text(&values), [None, None, Some("id".to_string())]);
        assert_eq!(misses, 2);
    }

    #[test]
    fn bad_expressions_are_refused_with_the_flag_named() {
        for (text, want) in [
            ("noequals", "expected NAME=EXPR"),
            ("=/a", "expected NAME=EXPR"),
            ("a=", "expected NAME=EXPR"),
            ("a=user.name", "a JSON Pointer starts with `/`"),
            ("a=jq:.[", "not a jq filter"),
            (
                "a=jq:nosuchfunction",
                "not a jq filter: undefined: nosuchfunction",
            ),
            ("a=re:(", "not a regular expression"),
        ] {
            let err = ExtractSpec::parse(text).expect_err(text).to_string();
            assert!(err.starts_with("--extract "), "{err}");
            assert!(err.contains(want), "{text}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }
}
