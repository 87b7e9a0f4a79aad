//! Query templates: `{{ flag }}`, `{{ namespace }}`, `{{ interval }}` and `{{ variant }}` in a
//! metric's PromQL, substituted so that no value can change the query's structure.
//!
//! The renderer knows where each placeholder stands:
//!
//! - **Outside a string literal**, `flag`, `namespace` and `variant` become a complete
//!   double-quoted PromQL string (`namespace={{ namespace }}` → `namespace="shop"`), and
//!   `interval` is written as the duration it is (`[{{ interval }}]` → `[1m]`), after checking
//!   that it is one.
//! - **Inside a `"…"` or `'…'` literal**, the value is escaped for that literal
//!   (`job="{{ flag }}"` → `job="a\"b"`), so it cannot end the string early.
//! - **Inside the literal of a regex matcher** (`=~` or `!~`), regex metacharacters are escaped
//!   first, so a key such as `new.checkout` matches itself and not `newXcheckout`.
//! - **Inside a `` `…` `` literal** (no escapes exist there), a value containing a backtick is
//!   refused.
//! - In a `#` comment nothing is substituted.
//!
//! [`check_query`] renders a query with sample values and parses the result with
//! `promql-parser`, so an unknown placeholder or PromQL that does not parse is reported before
//! any query is sent.

use std::sync::Once;

use crate::crd::{Analysis, DEFAULT_INTERVAL, FeatureFlag};

/// The placeholders a query may use.
pub const PLACEHOLDERS: [&str; 5] = [
    "flag",
    "namespace",
    "interval",
    "variant",
    "since_ramp_start",
];

/// Values for the placeholders of one analysis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateContext {
    /// The flag's key (`spec.key`, or else `metadata.name`).
    pub flag: String,
    /// The flag's namespace.
    pub namespace: String,
    /// The analysis interval, a PromQL duration such as `1m` or `1h30m`.
    pub interval: String,
    /// The experiment arm being analysed; `None` outside experiments.
    pub variant: Option<String>,
    /// The time since the ramp started, a PromQL duration such as `3600s`; `None` outside
    /// guardrail queries.
    pub since_ramp_start: Option<String>,
}

impl TemplateContext {
    /// The context of `flag`'s own analysis: its key, its namespace (`default` when unset)
    /// and its analysis interval (`1m` when unset).
    pub fn for_flag(flag: &FeatureFlag, variant: Option<&str>) -> Self {
        let interval = flag
            .spec
            .rollout
            .as_ref()
            .and_then(|rollout| rollout.analysis.as_ref())
            .map_or_else(|| DEFAULT_INTERVAL.to_string(), |a| a.interval.clone());
        Self {
            flag: flag.key().to_string(),
            namespace: flag
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_string()),
            interval,
            variant: variant.map(str::to_string),
            since_ramp_start: None,
        }
    }

    /// Sample values used by [`check_query`]; every placeholder has one.
    pub fn sample() -> Self {
        Self {
            flag: "example-flag".into(),
            namespace: "default".into(),
            interval: "1m".into(),
            variant: Some("control".into()),
            since_ramp_start: Some("3600s".into()),
        }
    }

    /// The same context with `analysis.interval` as its interval.
    pub fn with_interval_of(mut self, analysis: &Analysis) -> Self {
        self.interval = analysis.interval.clone();
        self
    }
}

/// Why a query template cannot be rendered or does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "unknown placeholder {{{{ {name} }}}} at byte {offset}; the known ones are {{{{ flag }}}}, {{{{ namespace }}}}, {{{{ interval }}}}, {{{{ variant }}}} and {{{{ since_ramp_start }}}}"
    )]
    UnknownPlaceholder { name: String, offset: usize },
    #[error(
        "malformed placeholder at byte {offset}: expected `{{{{ name }}}}` with a name of letters, digits and `_`"
    )]
    Malformed { offset: usize },
    #[error(
        "{{{{ {name} }}}} at byte {offset} has no value here (only an experiment's queries have a variant, and only a guardrail's queries have since_ramp_start)"
    )]
    MissingValue { name: &'static str, offset: usize },
    #[error(
        "{{{{ {name} }}}} at byte {offset} is inside a backtick string, which cannot hold its value {value:?}; use double quotes"
    )]
    Unrepresentable {
        name: &'static str,
        value: String,
        offset: usize,
    },
    #[error("{{{{ {name} }}}} value {value:?} is not a PromQL duration such as 1m or 1h30m")]
    InvalidInterval { name: &'static str, value: String },
    #[error("PromQL does not parse: {message}")]
    Parse { message: String },
}

impl TemplateError {
    /// A short label for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Parse { .. } => "template_parse",
            _ => "template_placeholder",
        }
    }
}

/// Where the scanner stands in the query text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Context {
    Code,
    Comment,
    /// Inside a string literal opened by `quote`; `regex` when it is a `=~`/`!~` operand.
    Literal {
        quote: char,
        regex: bool,
    },
}

/// Substitutes every placeholder of `query` with the values of `context`.
pub fn render(query: &str, context: &TemplateContext) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(query.len() + 32);
    let mut state = Context::Code;
    let mut rest = query;
    let mut offset = 0;
    while let Some(c) = rest.chars().next() {
        if state != Context::Comment && rest.starts_with("{{") {
            let (name, length) = placeholder(rest, offset)?;
            out.push_str(&substitute(name, offset, state, context)?);
            rest = &rest[length..];
            offset += length;
            continue;
        }
        let mut consumed = c.len_utf8();
        match state {
            Context::Code => match c {
                '#' => state = Context::Comment,
                '"' | '\'' | '`' => {
                    let before = out.trim_end();
                    let regex = before.ends_with("=~") || before.ends_with("!~");
                    state = Context::Literal { quote: c, regex };
                }
                _ => {}
            },
            Context::Comment => {
                if c == '\n' {
                    state = Context::Code;
                }
            }
            Context::Literal { quote, .. } => {
                if c == '\\' && quote != '`' {
                    // Copy the escaped character as well, so an escaped quote does not end it.
                    if let Some(next) = rest[1..].chars().next() {
                        consumed += next.len_utf8();
                    }
                } else if c == quote {
                    state = Context::Code;
                }
            }
        }
        out.push_str(&rest[..consumed]);
        rest = &rest[consumed..];
        offset += consumed;
    }
    Ok(out)
}

/// Reads `{{ name }}` at the start of `text`; returns the name and the placeholder's length.
fn placeholder(text: &str, offset: usize) -> Result<(&str, usize), TemplateError> {
    let malformed = TemplateError::Malformed { offset };
    let inner = &text[2..];
    let end = inner.find("}}").ok_or(malformed.clone())?;
    let name = inner[..end].trim();
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(malformed);
    }
    Ok((name, end + 4))
}

fn substitute(
    name: &str,
    offset: usize,
    state: Context,
    context: &TemplateContext,
) -> Result<String, TemplateError> {
    let (name, value): (&'static str, &str) = match name {
        "flag" => ("flag", &context.flag),
        "namespace" => ("namespace", &context.namespace),
        "interval" => ("interval", &context.interval),
        "variant" => (
            "variant",
            context
                .variant
                .as_deref()
                .ok_or(TemplateError::MissingValue {
                    name: "variant",
                    offset,
                })?,
        ),
        "since_ramp_start" => (
            "since_ramp_start",
            context
                .since_ramp_start
                .as_deref()
                .ok_or(TemplateError::MissingValue {
                    name: "since_ramp_start",
                    offset,
                })?,
        ),
        other => {
            return Err(TemplateError::UnknownPlaceholder {
                name: other.to_string(),
                offset,
            });
        }
    };
    match state {
        Context::Code if name == "interval" || name == "since_ramp_start" => {
            if is_promql_duration(value) {
                Ok(value.to_string())
            } else {
                Err(TemplateError::InvalidInterval {
                    name,
                    value: value.to_string(),
                })
            }
        }
        Context::Code => Ok(format!("\"{}\"", escape_literal(value, '"'))),
        // Placeholders in comments are never substituted; `render` does not call us there.
        Context::Comment => Ok(String::new()),
        Context::Literal { quote: '`', regex } => {
            let value = if regex {
                escape_regex(value)
            } else {
                value.to_string()
            };
            if value.contains('`') {
                Err(TemplateError::Unrepresentable {
                    name,
                    value,
                    offset,
                })
            } else {
                Ok(value)
            }
        }
        Context::Literal { quote, regex } => {
            if regex {
                Ok(escape_literal(&escape_regex(value), quote))
            } else {
                Ok(escape_literal(value, quote))
            }
        }
    }
}

/// Escapes `value` for a PromQL string literal delimited by `quote` (`"` or `'`). PromQL
/// follows Go's string syntax: backslash escapes, and no raw control characters.
pub fn escape_literal(value: &str, quote: char) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Escapes RE2 metacharacters, so `value` matches only itself inside a regex matcher.
pub fn escape_regex(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    for c in value.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `<number><unit>` groups with PromQL's units: ms, s, m, h, d, w, y.
fn is_promql_duration(value: &str) -> bool {
    let mut rest = value;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ms", "s", "m", "h", "d", "w", "y"]
            .into_iter()
            .find(|unit| rest.starts_with(unit));
        match unit {
            Some(unit) => rest = &rest[unit.len()..],
            None => return false,
        }
    }
    true
}

/// Checks a query template without sending it anywhere: every placeholder is known, and the
/// query rendered with sample values parses as PromQL.
pub fn check_query(query: &str) -> Result<(), TemplateError> {
    let rendered = render(query, &TemplateContext::sample())?;
    parse_promql(&rendered)
}

/// Renders `query` and checks that the result parses; what the provider sends.
pub fn render_checked(query: &str, context: &TemplateContext) -> Result<String, TemplateError> {
    let rendered = render(query, context)?;
    parse_promql(&rendered)?;
    Ok(rendered)
}

/// Parses rendered PromQL with `promql-parser`.
///
/// The crate follows Prometheus 3.x. Prometheus 2.x's `holt_winters` (renamed
/// `double_exponential_smoothing` in 3.0) is registered as well, so queries written for the
/// 2.x servers many clusters still run are not refused.
pub fn parse_promql(promql: &str) -> Result<(), TemplateError> {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        use promql_parser::parser::function::{Function, register_extra_functions};
        use promql_parser::parser::value::ValueType;
        // Fails only if a future promql-parser makes it a built-in again, which is as good.
        let _ = register_extra_functions(vec![Function::new(
            "holt_winters",
            vec![ValueType::Matrix, ValueType::Scalar, ValueType::Scalar],
            0,
            ValueType::Vector,
            false,
        )]);
    });
    if promql.trim().is_empty() {
        return Err(TemplateError::Parse {
            message: "the query is empty".into(),
        });
    }
    promql_parser::parser::parse(promql)
        .map(|_| ())
        .map_err(|message| TemplateError::Parse {
            message: message.split_whitespace().collect::<Vec<_>>().join(" "),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> TemplateContext {
        TemplateContext {
            flag: "new-checkout".into(),
            namespace: "shop".into(),
            interval: "5m".into(),
            variant: None,
            since_ramp_start: None,
        }
    }

    #[test]
    fn since_ramp_start_is_a_range_and_only_where_it_has_a_value() {
        let query = "sum by (cohort) (increase(x_total[{{ since_ramp_start }}]))";
        let with = TemplateContext {
            since_ramp_start: Some("3725s".into()),
            ..context()
        };
        assert_eq!(
            render(query, &with).unwrap(),
            "sum by (cohort) (increase(x_total[3725s]))"
        );
        assert_eq!(
            render(query, &context()),
            Err(TemplateError::MissingValue {
                name: "since_ramp_start",
                offset: 34
            })
        );
    }

    #[test]
    fn substitutes_inside_quotes_and_bare() {
        let query = r#"sum(rate(http_requests_total{flag="{{ flag }}", namespace={{namespace}}}[{{ interval }}]))"#;
        assert_eq!(
            render(query, &context()).unwrap(),
            r#"sum(rate(http_requests_total{flag="new-checkout", namespace="shop"}[5m]))"#
        );
    }

    #[test]
    fn values_cannot_break_out_of_their_quotes() {
        let hostile = TemplateContext {
            flag: r#"x"} or vector(1) or {a=""#.into(),
            namespace: "a'b\\".into(),
            ..context()
        };
        let double = render(r#"up{job="{{ flag }}"}"#, &hostile).unwrap();
        assert_eq!(double, r#"up{job="x\"} or vector(1) or {a=\""}"#);
        let single = render("up{ns='{{ namespace }}'}", &hostile).unwrap();
        assert_eq!(single, r"up{ns='a\'b\\'}");
        let bare = render("up{job={{ flag }}}", &hostile).unwrap();
        assert_eq!(bare, r#"up{job="x\"} or vector(1) or {a=\""}"#);
        for rendered in [double, single, bare] {
            // Still a single selector: the value stayed inside its literal.
            let expr = promql_parser::parser::parse(&rendered).unwrap();
            assert!(
                matches!(expr, promql_parser::parser::Expr::VectorSelector(_)),
                "{rendered}"
            );
        }
    }

    #[test]
    fn regex_matchers_match_the_value_literally() {
        let ctx = TemplateContext {
            flag: "new.checkout".into(),
            ..context()
        };
        assert_eq!(
            render(r#"up{job=~"{{ flag }}|other", a="{{ flag }}"}"#, &ctx).unwrap(),
            r#"up{job=~"new\\.checkout|other", a="new.checkout"}"#
        );
    }

    #[test]
    fn escaped_quotes_do_not_end_a_literal() {
        let rendered = render(r#"up{a="x\"{{ flag }}"} # {{ nope }}"#, &context()).unwrap();
        assert_eq!(rendered, r#"up{a="x\"new-checkout"} # {{ nope }}"#);
    }

    #[test]
    fn backticks_refuse_what_they_cannot_hold() {
        let ctx = TemplateContext {
            flag: "a`b".into(),
            ..context()
        };
        assert!(matches!(
            render("up{a=`{{ flag }}`}", &ctx),
            Err(TemplateError::Unrepresentable { name: "flag", .. })
        ));
        assert_eq!(
            render("up{a=`{{ flag }}`}", &context()).unwrap(),
            "up{a=`new-checkout`}"
        );
    }

    #[test]
    fn unknown_and_malformed_placeholders_are_errors() {
        let error = render("up{a={{ target }}}", &context()).unwrap_err();
        assert_eq!(
            error,
            TemplateError::UnknownPlaceholder {
                name: "target".into(),
                offset: 5
            }
        );
        assert!(error.to_string().contains("{{ target }}"), "{error}");
        assert!(matches!(
            render("up{a={{ flag }", &context()),
            Err(TemplateError::Malformed { offset: 5 })
        ));
        assert!(matches!(
            render("up{a={{ fl ag }}}", &context()),
            Err(TemplateError::Malformed { .. })
        ));
    }

    #[test]
    fn variant_needs_a_value() {
        assert!(matches!(
            render(r#"up{v="{{ variant }}"}"#, &context()),
            Err(TemplateError::MissingValue {
                name: "variant",
                ..
            })
        ));
        let ctx = TemplateContext {
            variant: Some("treatment".into()),
            ..context()
        };
        assert_eq!(
            render(r#"up{v="{{ variant }}"}"#, &ctx).unwrap(),
            r#"up{v="treatment"}"#
        );
    }

    #[test]
    fn bare_interval_must_be_a_duration() {
        let ctx = TemplateContext {
            interval: "5m]) or vector(1".into(),
            ..context()
        };
        assert!(matches!(
            render("rate(x[{{ interval }}])", &ctx),
            Err(TemplateError::InvalidInterval { .. })
        ));
        for good in ["10s", "1h30m", "250ms", "1d"] {
            assert!(is_promql_duration(good), "{good}");
        }
        for bad in ["", "m", "1", "1.5m", "1 m", "-1m"] {
            assert!(!is_promql_duration(bad), "{bad}");
        }
    }

    #[test]
    fn check_query_reports_parse_errors() {
        assert_eq!(
            check_query(r#"sum(rate(x{job="{{ flag }}"}[{{ interval }}]))"#),
            Ok(())
        );
        let error = check_query("sum(rate(x[5m])").unwrap_err();
        assert!(matches!(error, TemplateError::Parse { .. }), "{error}");
        assert!(matches!(
            check_query("   "),
            Err(TemplateError::Parse { .. })
        ));
        assert!(matches!(
            check_query("rate(x[{{ window }}])"),
            Err(TemplateError::UnknownPlaceholder { .. })
        ));
    }

    #[test]
    fn prometheus_2_syntax_parses() {
        for query in [
            "holt_winters(x[10m], 0.5, 0.5)",
            "rate(x[5m] @ 1700000000 offset -1m)",
            "max_over_time(rate(x[1m])[10m:30s])",
            r#"histogram_quantile(0.99, sum by (le) (rate(h_bucket{a!~"b"}[5m])))"#,
            "sum without (instance) (x) / on(job) group_left sum by (job) (y)",
            "absent_over_time(x[5m]) or vector(0)",
            "x atan2 y > bool 1",
            "label_replace(x, \"dst\", \"$1\", \"src\", \"(.*)\")",
            "quantile_over_time(0.9, x[1h30m])",
        ] {
            assert_eq!(parse_promql(query), Ok(()), "{query}");
        }
    }

    proptest::proptest! {
        #[test]
        fn rendering_and_checking_never_panic(query in ".{0,80}", flag in ".{0,20}") {
            let ctx = TemplateContext { flag, ..context() };
            let _ = render(&query, &ctx);
            let _ = check_query(&query);
        }

        #[test]
        fn any_value_stays_inside_its_literal(value in "\\PC{0,30}") {
            let ctx = TemplateContext { flag: value.clone(), namespace: value, ..context() };
            for query in [r#"up{a="{{ flag }}"}"#, "up{a='{{ flag }}'}", "up{a={{ namespace }}}", r#"up{a=~"{{ flag }}"}"#] {
                let rendered = render(query, &ctx).unwrap();
                let expr = promql_parser::parser::parse(&rendered);
                proptest::prop_assert!(
                    matches!(expr, Ok(promql_parser::parser::Expr::VectorSelector(_))),
                    "{} -> {:?}", rendered, expr
                );
            }
        }
    }
}
