//! Path templates of `google.api.http` rules: parsing, matching, and the
//! percent-decoding rules of gRPC transcoding.
//!
//! ```text
//! Template = "/" Segments [ Verb ] ;
//! Segments = Segment { "/" Segment } ;
//! Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! FieldPath = IDENT { "." IDENT } ;
//! Verb     = ":" LITERAL ;
//! ```
//! A variable of one segment is fully percent-decoded; a variable spanning
//! several segments keeps reserved characters (such as `%2F`) encoded, so
//! that the value can be split back into its segments.

use std::fmt;

/// One segment of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `*`: exactly one segment.
    One,
    /// `**`: any number of segments, only last.
    Rest,
}

/// A variable binding a field path to a run of segments.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Variable {
    field_path: String,
    start: usize,
    /// One past the last segment.
    end: usize,
}

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    source: String,
    segments: Vec<Segment>,
    variables: Vec<Variable>,
    verb: Option<String>,
}

/// A template that does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path template {template:?}: {reason}")]
pub struct TemplateError {
    template: String,
    reason: &'static str,
}

impl PathTemplate {
    /// Parses `template`.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let fail = |reason| TemplateError {
            template: template.to_owned(),
            reason,
        };
        let rest = template
            .strip_prefix('/')
            .ok_or_else(|| fail("must start with /"))?;
        // The verb is after a ':' that is outside any variable braces.
        let (body, verb) = split_verb(rest);
        let mut parsed = Self {
            source: template.to_owned(),
            segments: Vec::new(),
            variables: Vec::new(),
            verb: None,
        };
        if let Some(verb) = verb {
            if verb.is_empty() || verb.contains(['/', '{', '}', '*']) {
                return Err(fail("bad verb"));
            }
            parsed.verb = Some(verb.to_owned());
        }
        let mut chars = body;
        while !chars.is_empty() {
            if let Some(after) = chars.strip_prefix('{') {
                let close = after.find('}').ok_or_else(|| fail("unclosed {"))?;
                let inner = &after[..close];
                let (field_path, pattern) = inner.split_once('=').unwrap_or((inner, "*"));
                if field_path.is_empty() || !field_path.split('.').all(is_ident) {
                    return Err(fail("bad field path in a variable"));
                }
                if parsed.variables.iter().any(|v| v.field_path == field_path) {
                    return Err(fail("a field is bound twice"));
                }
                let start = parsed.segments.len();
                for part in pattern.split('/') {
                    parsed.segments.push(
                        plain_segment(part).ok_or_else(|| fail("bad segment in a variable"))?,
                    );
                }
                parsed.variables.push(Variable {
                    field_path: field_path.to_owned(),
                    start,
                    end: parsed.segments.len(),
                });
                chars = &after[close + 1..];
            } else {
                let end = chars.find('/').unwrap_or(chars.len());
                parsed
                    .segments
                    .push(plain_segment(&chars[..end]).ok_or_else(|| fail("bad segment"))?);
                chars = &chars[end..];
            }
            match chars.strip_prefix('/') {
                Some(next) if !next.is_empty() => chars = next,
                Some(_) => return Err(fail("trailing /")),
                None if chars.is_empty() => {}
                None => return Err(fail("a variable must be a whole segment")),
            }
        }
        if parsed.segments.is_empty() {
            return Err(fail("no segments"));
        }
        if let Some(i) = parsed.segments.iter().position(|s| *s == Segment::Rest)
            && i + 1 != parsed.segments.len()
        {
            return Err(fail("** must be the last segment"));
        }
        Ok(parsed)
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the template ends in a custom verb (`:freeze`).
    pub fn has_verb(&self) -> bool {
        self.verb.is_some()
    }

    /// Field paths bound by the template.
    pub fn field_paths(&self) -> impl Iterator<Item = &str> {
        self.variables.iter().map(|v| v.field_path.as_str())
    }

    /// A shape that equal templates share whatever their variable names,
    /// to detect two rules that can never be told apart.
    pub fn shape(&self) -> String {
        let mut shape: Vec<String> = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => l.clone(),
                Segment::One => "*".into(),
                Segment::Rest => "**".into(),
            })
            .collect();
        if let Some(verb) = &self.verb {
            shape.push(format!(":{verb}"));
        }
        shape.join("/")
    }

    /// How specific the template is, for trying the most specific first:
    /// a verb, then more literal segments, then fewer wildcards.
    pub fn specificity(&self) -> (bool, usize, usize, usize) {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        let rest = self
            .segments
            .iter()
            .filter(|s| **s == Segment::Rest)
            .count();
        (
            self.verb.is_some(),
            literals,
            usize::MAX - rest,
            self.segments.len(),
        )
    }

    /// Matches a request path (still percent-encoded, without the query);
    /// on success, the decoded value of every variable.
    pub fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let rest = path.strip_prefix('/')?;
        let rest = match &self.verb {
            Some(verb) => rest.strip_suffix(verb.as_str())?.strip_suffix(':')?,
            None => rest,
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let mut position = 0;
        // For each template segment, the range of path parts it took.
        let mut taken = Vec::with_capacity(self.segments.len());
        for segment in &self.segments {
            match segment {
                Segment::Literal(literal) => {
                    if parts.get(position).map(|p| decode(p, true)) != Some(Some(literal.clone())) {
                        return None;
                    }
                    taken.push((position, position + 1));
                    position += 1;
                }
                Segment::One => {
                    let part = parts.get(position)?;
                    if part.is_empty() {
                        return None;
                    }
                    taken.push((position, position + 1));
                    position += 1;
                }
                Segment::Rest => {
                    if parts[position.min(parts.len())..]
                        .iter()
                        .any(|p| p.is_empty())
                    {
                        return None;
                    }
                    taken.push((position, parts.len()));
                    position = parts.len();
                }
            }
        }
        if position != parts.len() {
            return None;
        }
        let mut bindings = Vec::with_capacity(self.variables.len());
        for variable in &self.variables {
            let from = taken[variable.start].0;
            let to = taken[variable.end - 1].1;
            let raw = parts[from..to].join("/");
            let single = variable.end - variable.start == 1
                && self.segments[variable.start] != Segment::Rest;
            bindings.push((variable.field_path.clone(), decode(&raw, single)?));
        }
        Some(bindings)
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn split_verb(rest: &str) -> (&str, Option<&str>) {
    let mut depth = 0usize;
    for (i, c) in rest.char_indices().rev() {
        match c {
            '}' => depth += 1,
            '{' => depth = depth.saturating_sub(1),
            '/' if depth == 0 => return (rest, None),
            ':' if depth == 0 => return (&rest[..i], Some(&rest[i + 1..])),
            _ => {}
        }
    }
    (rest, None)
}

fn plain_segment(text: &str) -> Option<Segment> {
    match text {
        "*" => Some(Segment::One),
        "**" => Some(Segment::Rest),
        "" => None,
        literal if literal.contains(['{', '}', '*', '=']) => None,
        literal => Some(Segment::Literal(literal.to_owned())),
    }
}

fn is_ident(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Percent-decodes `text`. With `fully` false, escapes of reserved
/// characters (RFC 6570 reserved expansion) stay as they are.
pub fn decode(text: &str, fully: bool) -> Option<String> {
    const RESERVED: &[u8] = b":/?#[]@!$&'()*+,;=";
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            let byte = u8::from_str_radix(hex, 16).ok()?;
            if fully || !RESERVED.contains(&byte) {
                out.push(byte);
            } else {
                out.extend_from_slice(&bytes[i..i + 3]);
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(template: &str, path: &str) -> Bindings {
        PathTemplate::parse(template).unwrap().matches(path)
    }

    type Bindings = Option<Vec<(String, String)>>;

    fn pairs(list: &[(&str, &str)]) -> Bindings {
        Some(
            list.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn matches_the_grammar_table() {
        let cases: &[(&str, &str, Bindings)] = &[
            ("/v1/accounts", "/v1/accounts", pairs(&[])),
            ("/v1/accounts", "/v1/accounts/x", None),
            (
                "/v1/accounts/{account_id}",
                "/v1/accounts/acc_1",
                pairs(&[("account_id", "acc_1")]),
            ),
            ("/v1/accounts/{account_id}", "/v1/accounts/", None),
            (
                "/v1/accounts/{account_id}:freeze",
                "/v1/accounts/acc_1:freeze",
                pairs(&[("account_id", "acc_1")]),
            ),
            (
                "/v1/accounts/{account_id}:freeze",
                "/v1/accounts/acc_1",
                None,
            ),
            ("/v1/accounts:lookup", "/v1/accounts:lookup", pairs(&[])),
            (
                "/v1/{name=shelves/*/books/*}",
                "/v1/shelves/s1/books/b2",
                pairs(&[("name", "shelves/s1/books/b2")]),
            ),
            ("/v1/{name=shelves/*/books/*}", "/v1/shelves/s1/books", None),
            (
                "/v1/{account.owner_id}/x",
                "/v1/bob/x",
                pairs(&[("account.owner_id", "bob")]),
            ),
            (
                "/v1/files/{path=**}",
                "/v1/files/a/b/c.txt",
                pairs(&[("path", "a/b/c.txt")]),
            ),
            ("/v1/files/{path=**}", "/v1/files", pairs(&[("path", "")])),
            (
                "/v1/*/items/{id}",
                "/v1/anything/items/7",
                pairs(&[("id", "7")]),
            ),
            ("/v1/**", "/v1/a/b", pairs(&[])),
        ];
        for (template, path, want) in cases {
            assert_eq!(&bind(template, path), want, "{template} on {path}");
        }
    }

    #[test]
    fn single_segments_decode_fully_multi_segments_keep_reserved() {
        assert_eq!(
            bind("/v1/a/{id}", "/v1/a/x%2Fy%20z"),
            pairs(&[("id", "x/y z")])
        );
        assert_eq!(
            bind("/v1/{name=a/**}", "/v1/a/x%2Fy/%20z"),
            pairs(&[("name", "a/x%2Fy/ z")])
        );
        assert_eq!(bind("/v1/a/{id}", "/v1/a/%zz"), None);
    }

    #[test]
    fn rejects_malformed_templates() {
        for bad in [
            "v1/x",
            "/v1/{id",
            "/v1/{}",
            "/v1/{a.}",
            "/v1/**/x",
            "/v1/x/",
            "/v1/x{id}",
            "/v1/{id}/{id}",
            "/v1/x:",
        ] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shapes_ignore_variable_names() {
        let a = PathTemplate::parse("/v1/accounts/{account_id}").unwrap();
        let b = PathTemplate::parse("/v1/accounts/{id}").unwrap();
        assert_eq!(a.shape(), b.shape());
        let verb = PathTemplate::parse("/v1/accounts/{id}:freeze").unwrap();
        assert_ne!(a.shape(), verb.shape());
        assert!(verb.specificity() > a.specificity());
    }
}
