//! Failures talking to Microsoft.

use std::time::Duration;

use crate::text::printable;

/// Why a call to Microsoft failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// The token endpoint refused the app for this Microsoft tenant: wrong secret, consent
    /// missing or withdrawn, app deleted (`invalid_client`, `unauthorized_client`, …).
    #[error("Microsoft refused the app's credentials ({error}): {description}")]
    TokenRefused {
        /// The OAuth `error` code.
        error: String,
        /// Microsoft's `error_description` (with its AADSTS code).
        description: String,
    },
    /// Graph answered with an error.
    #[error("Graph answered {status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Graph's `error.code`, e.g. `ErrorAccessDenied`.
        code: String,
        /// Graph's `error.message`.
        message: String,
        /// `Retry-After`, when Graph sent one.
        retry_after: Option<Duration>,
    },
    /// No answer: connection refused or reset, timeout, unreadable body.
    #[error("cannot reach Microsoft: {0}")]
    Transport(String),
}

impl GraphError {
    /// A token endpoint's answer: its refusal (with Microsoft's `error` and AADSTS
    /// description), or a transport failure.
    pub(crate) fn from_token_request<RE: std::error::Error + 'static>(
        err: oauth2::RequestTokenError<RE, oauth2::basic::BasicErrorResponse>,
    ) -> Self {
        match err {
            oauth2::RequestTokenError::ServerResponse(refusal) => Self::TokenRefused {
                error: printable(refusal.error().as_ref(), 100),
                description: printable(
                    refusal.error_description().map_or("", String::as_str),
                    1_000,
                ),
            },
            other => Self::Transport(other.to_string()),
        }
    }

    /// Graph's error answer, the one decoder for direct and `$batch` answers alike: `code`
    /// and `message` from `{"error":{"code","message"}}`; a body that is not Graph's error
    /// JSON gives `Http{status}` and the start of its text.
    pub(crate) fn from_answer(
        status: u16,
        retry_after: Option<Duration>,
        body: &serde_json::Value,
    ) -> Self {
        let text = |pointer: &str| body.pointer(pointer).and_then(serde_json::Value::as_str);
        let code =
            text("/error/code").map_or_else(|| format!("Http{status}"), |c| printable(c, 100));
        let message = text("/error/message")
            .or_else(|| body.as_str())
            .map_or_else(String::new, |m| printable(m, 200));
        Self::Api {
            status,
            code,
            message,
            retry_after,
        }
    }

    /// Graph's `error.code`, if Graph answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether Graph answered that `/users/{id}` names no user it knows that way (an unknown
    /// address, or an alias rather than a principal name).
    pub fn is_unknown_user(&self) -> bool {
        matches!(self, Self::Api { status: 404, code, .. }
            if code == "Request_ResourceNotFound" || code == "ErrorInvalidUser" || code == "ResourceNotFound")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_error_texts_lose_control_characters() {
        let body =
            serde_json::json!({"error": {"code": "Error\u{0}X", "message": "bad\u{0}\r\nthing"}});
        let GraphError::Api { code, message, .. } = GraphError::from_answer(400, None, &body)
        else {
            panic!("an API error")
        };
        assert_eq!((code.as_str(), message.as_str()), ("ErrorX", "badthing"));
    }
}
