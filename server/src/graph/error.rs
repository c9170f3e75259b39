//! Failures talking to Microsoft.

use std::time::Duration;

use crate::text::printable;

/// Why a call to Microsoft failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// That Microsoft tenant no longer lets the app in: consent withdrawn or never given, the
    /// app's service principal or the tenant itself gone (AADSTS65001, 700016, 7000229,
    /// 90002, …). This, and only this, means the tenant's permissions are revoked.
    #[error("Microsoft 365 tenant refuses the app ({error}): {description}")]
    ConsentMissing {
        /// The OAuth `error` code.
        error: String,
        /// Microsoft's `error_description` (with its AADSTS code).
        description: String,
    },
    /// The identity platform refused *our* credentials: a wrong or expired client secret, a
    /// certificate it does not know (AADSTS7000215, 7000222, 700027, …). A service-wide
    /// configuration error, never a fact about one tenant.
    #[error("Microsoft refused this service's app credentials ({error}): {description}")]
    CredentialRejected {
        /// The OAuth `error` code.
        error: String,
        /// Microsoft's `error_description`, or what could not be read locally.
        description: String,
    },
    /// Another definite refusal of the token endpoint (e.g. `invalid_scope`): neither
    /// revocation nor our credentials, and not worth retrying.
    #[error("Microsoft refused the token request ({error}): {description}")]
    TokenRefused {
        /// The OAuth `error` code.
        error: String,
        /// Microsoft's `error_description` (with its AADSTS code).
        description: String,
    },
    /// Graph (or the identity platform, for a transient refusal such as a 503
    /// `temporarily_unavailable`) answered with an error.
    #[error("Microsoft answered {status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Graph's `error.code`, e.g. `ErrorAccessDenied` (the OAuth `error` for the token
        /// endpoint).
        code: String,
        /// Graph's `error.message`.
        message: String,
        /// `Retry-After`, when Microsoft sent one.
        retry_after: Option<Duration>,
    },
    /// No answer: connection refused or reset, timeout, unreadable body.
    #[error("cannot reach Microsoft: {0}")]
    Transport(String),
}

/// AADSTS codes that say the app is not (or no longer) welcome in the tenant asked for
/// (Microsoft's error-code reference): consent missing (65001 `DelegationDoesNotExist`), the
/// app not found in that directory (700016), its service principal missing there (7000229),
/// disabled there (7000112), Graph's service principal missing there (500011), the tenant
/// not found (90002).
const CONSENT_MISSING: [u32; 6] = [65001, 700016, 7000229, 7000112, 500011, 90002];

/// AADSTS codes that say our own client credential is wrong: an invalid (7000215) or expired
/// (7000222) secret, a malformed or missing credential (7000216, 7000218), an assertion with
/// a signature of a key the app does not have (700027), issued for another app (700021), for
/// another audience (700023) or outside its validity (700024), the older invalid-secret code
/// (50012).
const OUR_CREDENTIAL: [u32; 9] = [
    7000215, 7000222, 7000216, 7000218, 700027, 700021, 700023, 700024, 50012,
];

/// The AADSTS number a description starts with (`AADSTS700016: …`).
fn aadsts_code(description: &str) -> Option<u32> {
    let rest = &description[description.find("AADSTS")? + "AADSTS".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

impl GraphError {
    /// The token endpoint's answer (`status` and `Retry-After` as the HTTP response carried
    /// them): an outage (5xx, 429, `temporarily_unavailable`) is a retryable
    /// [`GraphError::Api`]; a refusal is sorted by its AADSTS code into the tenant's missing
    /// consent, our own credential, or another refusal.
    pub(crate) fn from_token_request<RE: std::error::Error + 'static>(
        status: Option<u16>,
        retry_after: Option<Duration>,
        err: oauth2::RequestTokenError<RE, oauth2::basic::BasicErrorResponse>,
    ) -> Self {
        let refusal = match err {
            oauth2::RequestTokenError::ServerResponse(refusal) => refusal,
            // An answer that is not OAuth's error JSON: a front door's 5xx page, a cut body.
            oauth2::RequestTokenError::Parse(_, _) if status.is_some_and(|s| s >= 400) => {
                return Self::Api {
                    status: status.unwrap_or(500),
                    code: "unreadable_error".to_owned(),
                    message: "the token endpoint answered an error without OAuth's JSON".to_owned(),
                    retry_after,
                };
            }
            other => return Self::Transport(other.to_string()),
        };
        let error = printable(refusal.error().as_ref(), 100);
        let description = printable(
            refusal.error_description().map_or("", String::as_str),
            1_000,
        );
        let status = status.unwrap_or(400);
        let code = aadsts_code(&description);
        let transient = status >= 500
            || status == 429
            || matches!(error.as_str(), "temporarily_unavailable" | "server_error");
        if transient {
            return Self::Api {
                status,
                code: error,
                message: description,
                retry_after,
            };
        }
        match code {
            Some(c) if CONSENT_MISSING.contains(&c) => Self::ConsentMissing { error, description },
            Some(c) if OUR_CREDENTIAL.contains(&c) => {
                Self::CredentialRejected { error, description }
            }
            // `invalid_client` without a code we know is still about the client's credential.
            None if error == "invalid_client" => Self::CredentialRejected { error, description },
            _ => Self::TokenRefused { error, description },
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

    /// Whether Graph throttles the app as a whole — its global limit across every tenant and
    /// mailbox (`TooManyRequests`, Microsoft's documented answer) — rather than one mailbox
    /// (`ApplicationThrottled`, `MailboxConcurrency`) or one tenant's directory budget.
    pub fn is_app_throttled(&self) -> bool {
        matches!(self, Self::Api { status: 429, code, .. } if code == "TooManyRequests")
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

    fn refusal(status: u16, error: &str, description: &str) -> GraphError {
        let body = serde_json::json!({"error": error, "error_description": description});
        let parsed: oauth2::basic::BasicErrorResponse = serde_json::from_value(body).unwrap();
        GraphError::from_token_request::<std::io::Error>(
            Some(status),
            None,
            oauth2::RequestTokenError::ServerResponse(parsed),
        )
    }

    #[test]
    fn token_refusals_are_sorted_by_whose_problem_they_are() {
        let kind = |e: GraphError| match e {
            GraphError::ConsentMissing { .. } => "tenant",
            GraphError::CredentialRejected { .. } => "ours",
            GraphError::TokenRefused { .. } => "other",
            GraphError::Api { .. } => "outage",
            GraphError::Transport(_) => "transport",
        };
        let cases = [
            (
                400,
                "unauthorized_client",
                "AADSTS700016: Application not found",
                "tenant",
            ),
            (
                400,
                "invalid_grant",
                "AADSTS65001: The user or administrator has not consented",
                "tenant",
            ),
            (
                400,
                "invalid_request",
                "AADSTS90002: Tenant 'x' not found.",
                "tenant",
            ),
            (
                401,
                "invalid_client",
                "AADSTS7000229: missing service principal in the tenant",
                "tenant",
            ),
            (
                401,
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided.",
                "ours",
            ),
            (
                401,
                "invalid_client",
                "AADSTS7000222: The provided client secret keys are expired.",
                "ours",
            ),
            (
                401,
                "invalid_client",
                "AADSTS700027: Client assertion contains an invalid signature.",
                "ours",
            ),
            (401, "invalid_client", "no code at all", "ours"),
            (
                400,
                "invalid_scope",
                "AADSTS1002012: The provided value for scope",
                "other",
            ),
            (
                503,
                "temporarily_unavailable",
                "AADSTS50196: The server is temporarily unavailable.",
                "outage",
            ),
            (
                500,
                "server_error",
                "AADSTS90033: A transient error has occurred.",
                "outage",
            ),
            (
                500,
                "unauthorized_client",
                "AADSTS700016: even with a consent code, a 5xx is an outage",
                "outage",
            ),
            (
                429,
                "temporarily_unavailable",
                "AADSTS50196: throttled",
                "outage",
            ),
        ];
        for (status, error, description, expected) in cases {
            assert_eq!(
                kind(refusal(status, error, description)),
                expected,
                "{status} {description}"
            );
        }
    }

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
