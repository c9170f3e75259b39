//! The slice of OData the service uses: system query options, string literals, and exactly the
//! `$filter` forms graph.md lists. Everything else is refused with Graph's 400.
//!
//! Query strings are decoded as `application/x-www-form-urlencoded` (as Graph's front end does):
//! `%XX` escapes are decoded and a raw `+` becomes a space, so a client must send `%2B` for `+`.
//! Inside a string literal `''` stands for one `'`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::graph::error::GraphError;

/// The system query options of one request.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct QueryOptions {
    pub filter: Option<String>,
    pub select: Option<String>,
    pub top: Option<usize>,
    pub skip: Option<usize>,
    pub orderby: Option<String>,
    pub count: Option<String>,
}

const KNOWN_OPTIONS: [&str; 10] = [
    "$filter",
    "$select",
    "$top",
    "$skip",
    "$skiptoken",
    "$orderby",
    "$count",
    "$expand",
    "$search",
    "$format",
];
/// Most items one page may hold.
pub const MAX_TOP: usize = 1000;

fn syntax_error(message: impl Into<String>) -> GraphError {
    GraphError::bad_request(message)
}

/// Parses the raw (still percent-encoded) query string.
pub fn parse_query(raw: Option<&str>) -> Result<QueryOptions, GraphError> {
    let mut options = QueryOptions::default();
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let key = key.to_ascii_lowercase();
        if !key.starts_with('$') {
            continue;
        }
        if !KNOWN_OPTIONS.contains(&key.as_str()) {
            return Err(syntax_error(format!(
                "Query option '{key}' is not supported."
            )));
        }
        if seen.contains(&key) {
            return Err(syntax_error(format!(
                "Query option '{key}' was specified more than once, but it must be specified at most once."
            )));
        }
        seen.push(key.clone());
        let value = value.into_owned();
        match key.as_str() {
            "$filter" => options.filter = Some(value),
            "$select" => options.select = Some(value),
            "$orderby" => options.orderby = Some(value),
            "$count" => options.count = Some(value),
            "$top" => {
                let top: usize = value.trim().parse().map_err(|_| {
                    syntax_error(format!("Invalid value '{value}' for $top query option found. The $top query option requires a non-negative integer value."))
                })?;
                if top > MAX_TOP {
                    return Err(syntax_error(format!(
                        "The limit of '{MAX_TOP}' for Top query has been exceeded. The value from the incoming request is '{top}'."
                    )));
                }
                options.top = Some(top);
            }
            "$skip" | "$skiptoken" => {
                let skip: usize = value
                    .trim()
                    .parse()
                    .map_err(|_| syntax_error(format!("Invalid value '{value}' for {key}.")))?;
                options.skip = Some(skip);
            }
            _ => {
                return Err(syntax_error(format!(
                    "Query option '{key}' is not supported on this resource."
                )));
            }
        }
    }
    Ok(options)
}

/// One lexical token of a filter.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Literal(String),
    Open,
    Close,
    Colon,
}

fn tokenize(filter: &str) -> Result<Vec<Token>, GraphError> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = filter.chars().collect();
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at];
        match c {
            ' ' | '\t' => at += 1,
            '(' => {
                tokens.push(Token::Open);
                at += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                at += 1;
            }
            ':' => {
                tokens.push(Token::Colon);
                at += 1;
            }
            '\'' => {
                let start = at;
                at += 1;
                let mut literal = String::new();
                loop {
                    match chars.get(at) {
                        None => {
                            return Err(syntax_error(format!(
                                "Invalid filter clause: There is an unterminated literal at position {start} in '{filter}'."
                            )));
                        }
                        Some('\'') if chars.get(at + 1) == Some(&'\'') => {
                            literal.push('\'');
                            at += 2;
                        }
                        Some('\'') => {
                            at += 1;
                            break;
                        }
                        Some(other) => {
                            literal.push(*other);
                            at += 1;
                        }
                    }
                }
                tokens.push(Token::Literal(literal));
            }
            c if c.is_alphanumeric() || matches!(c, '_' | '/' | '.' | '$') => {
                let start = at;
                while at < chars.len()
                    && (chars[at].is_alphanumeric() || matches!(chars[at], '_' | '/' | '.' | '$'))
                {
                    at += 1;
                }
                tokens.push(Token::Word(chars[start..at].iter().collect()));
            }
            other => {
                return Err(syntax_error(format!(
                    "Invalid filter clause: Syntax error: character '{other}' is not valid at position {at} in '{filter}'."
                )));
            }
        }
    }
    Ok(tokens)
}

/// The message filters Graph serves for this service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageFilter {
    InternetMessageId(String),
    ConversationId(String),
}

fn unsupported_message_filter(filter: &str) -> GraphError {
    syntax_error(format!(
        "Invalid filter clause: '{filter}' is not supported (graph-sim serves internetMessageId eq '…' and conversationId eq '…')."
    ))
}

/// Parses `internetMessageId eq '…'` or `conversationId eq '…'`.
pub fn parse_message_filter(filter: &str) -> Result<MessageFilter, GraphError> {
    let tokens = tokenize(filter)?;
    match tokens.as_slice() {
        [
            Token::Word(property),
            Token::Word(op),
            Token::Literal(value),
        ] if op.eq_ignore_ascii_case("eq") => {
            if property.eq_ignore_ascii_case("internetMessageId") {
                Ok(MessageFilter::InternetMessageId(value.clone()))
            } else if property.eq_ignore_ascii_case("conversationId") {
                Ok(MessageFilter::ConversationId(value.clone()))
            } else {
                Err(syntax_error(format!(
                    "Could not find a property named '{property}' on type 'Microsoft.OutlookServices.Message'."
                )))
            }
        }
        _ => Err(unsupported_message_filter(filter)),
    }
}

/// One alternative of a user lookup filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserTerm {
    Mail(String),
    UserPrincipalName(String),
    /// `proxyAddresses/any(x:x eq '…')`; the value includes its `smtp:` prefix.
    ProxyAddress(String),
}

/// Parses `term or term or …` with the terms of [`UserTerm`].
pub fn parse_user_filter(filter: &str) -> Result<Vec<UserTerm>, GraphError> {
    let unsupported = || {
        GraphError::new(
            http::StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
            "Unsupported Query.",
        )
    };
    let tokens = tokenize(filter)?;
    let mut terms = Vec::new();
    let mut rest = tokens.as_slice();
    loop {
        let (term, after) = match rest {
            [
                Token::Word(p),
                Token::Word(op),
                Token::Literal(v),
                after @ ..,
            ] if op.eq_ignore_ascii_case("eq") => {
                let term = if p.eq_ignore_ascii_case("mail") {
                    UserTerm::Mail(v.clone())
                } else if p.eq_ignore_ascii_case("userPrincipalName") {
                    UserTerm::UserPrincipalName(v.clone())
                } else {
                    return Err(unsupported());
                };
                (term, after)
            }
            [
                Token::Word(any),
                Token::Open,
                Token::Word(var),
                Token::Colon,
                Token::Word(var2),
                Token::Word(op),
                Token::Literal(v),
                Token::Close,
                after @ ..,
            ] if any.eq_ignore_ascii_case("proxyAddresses/any")
                && var == var2
                && op.eq_ignore_ascii_case("eq") =>
            {
                (UserTerm::ProxyAddress(v.clone()), after)
            }
            _ => return Err(unsupported()),
        };
        terms.push(term);
        match after {
            [] => return Ok(terms),
            [Token::Word(or), more @ ..] if or.eq_ignore_ascii_case("or") && !more.is_empty() => {
                rest = more;
            }
            _ => return Err(unsupported()),
        }
    }
}

/// Sort orders the message list accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageOrder {
    ReceivedDesc,
    ReceivedAsc,
    SentDesc,
    SentAsc,
}

pub fn parse_message_order(orderby: &str) -> Result<MessageOrder, GraphError> {
    let words: Vec<&str> = orderby.split_whitespace().collect();
    let descending = match words.get(1) {
        None => false,
        Some(d) if d.eq_ignore_ascii_case("desc") => true,
        Some(a) if a.eq_ignore_ascii_case("asc") => false,
        Some(_) => {
            return Err(syntax_error(format!(
                "Invalid $orderby clause '{orderby}'."
            )));
        }
    };
    match (words.first(), descending, words.len()) {
        (Some(p), true, 2) if p.eq_ignore_ascii_case("receivedDateTime") => {
            Ok(MessageOrder::ReceivedDesc)
        }
        (Some(p), false, 1 | 2) if p.eq_ignore_ascii_case("receivedDateTime") => {
            Ok(MessageOrder::ReceivedAsc)
        }
        (Some(p), true, 2) if p.eq_ignore_ascii_case("sentDateTime") => Ok(MessageOrder::SentDesc),
        (Some(p), false, 1 | 2) if p.eq_ignore_ascii_case("sentDateTime") => {
            Ok(MessageOrder::SentAsc)
        }
        _ => Err(syntax_error(format!(
            "Invalid $orderby clause '{orderby}'."
        ))),
    }
}

/// Splits and checks `$select` against the properties an entity has (case-insensitive); returns
/// the canonical names.
pub fn parse_select(
    select: &str,
    known: &[&'static str],
    entity: &str,
) -> Result<Vec<&'static str>, GraphError> {
    let mut chosen = Vec::new();
    for name in select.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let canonical = known
            .iter()
            .find(|k| k.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                syntax_error(format!(
                    "Could not find a property named '{name}' on type '{entity}'."
                ))
            })?;
        if !chosen.contains(canonical) {
            chosen.push(*canonical);
        }
    }
    Ok(chosen)
}

/// Characters a value keeps unescaped in a query string built by the simulator.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b',');

/// Builds a query string from options; keys are written as is (`$filter`), values escaped.
pub fn encode_query(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{key}={}", utf8_percent_encode(value, QUERY_VALUE)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Quotes a value as an OData string literal (for tests and examples).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubled_quote_is_one_quote_in_a_literal() {
        let filter = parse_message_filter("internetMessageId eq '<o''brien@x>'").unwrap();
        assert_eq!(
            filter,
            MessageFilter::InternetMessageId("<o'brien@x>".into())
        );
    }

    #[test]
    fn single_quote_inside_literal_is_refused() {
        assert!(parse_message_filter("internetMessageId eq '<o'brien@x>'").is_err());
    }

    #[test]
    fn raw_plus_in_query_decodes_to_space() {
        let options = parse_query(Some("$filter=internetMessageId%20eq%20'a+b'")).unwrap();
        assert_eq!(
            options.filter.as_deref(),
            Some("internetMessageId eq 'a b'")
        );
    }

    #[test]
    fn user_filter_with_alias_alternative_parses() {
        let terms =
            parse_user_filter("mail eq 'a@x' or proxyAddresses/any(x:x eq 'smtp:a@x')").unwrap();
        assert_eq!(
            terms,
            vec![
                UserTerm::Mail("a@x".into()),
                UserTerm::ProxyAddress("smtp:a@x".into())
            ]
        );
    }

    #[test]
    fn other_message_filters_are_refused() {
        assert!(parse_message_filter("subject eq 'x'").is_err());
        assert!(parse_message_filter("internetMessageId eq 'a' and isRead eq false").is_err());
    }
}
