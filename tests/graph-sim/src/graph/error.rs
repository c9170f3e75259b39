//! Graph's error answers: `{"error":{"code","message","innerError":{"date","request-id"}}}`.

use std::borrow::Cow;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use crate::identity::tokens::TokenRejection;
use crate::middleware::current_request_id;
use crate::throttle::Throttled;

/// The JSON content type Graph answers with.
pub const ODATA_JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// One Graph error answer.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphError {
    pub status: StatusCode,
    pub code: Cow<'static, str>,
    pub message: String,
    pub retry_after_secs: Option<u64>,
    /// A front-door style HTML page instead of JSON (502).
    pub html: bool,
    /// The app's global limit: `innerError` carries `code`, `message` and `status` as in
    /// Microsoft's documented sample answer.
    pub app_wide: bool,
}

impl GraphError {
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            retry_after_secs: None,
            html: false,
            app_wide: false,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn unauthenticated(rejection: TokenRejection) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            rejection.message(),
        )
    }

    pub fn throttled(throttled: Throttled) -> Self {
        Self {
            retry_after_secs: Some(throttled.retry_after_secs),
            app_wide: throttled.reason.is_app_wide(),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                throttled.reason.code(),
                throttled.reason.message(),
            )
        }
    }

    /// A user that does not exist in the caller's tenant, on a mail call.
    pub fn invalid_user(key: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ErrorInvalidUser",
            format!("The requested user '{key}' is invalid."),
        )
    }

    /// A directory object that does not exist in the caller's tenant.
    pub fn resource_not_found(key: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!(
                "Resource '{key}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    pub fn item_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        )
    }

    pub fn id_malformed() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidIdMalformed",
            "Id is malformed.",
        )
    }

    pub fn mail_access_denied() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        )
    }

    pub fn directory_access_denied() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    }

    pub fn server_fault(status: StatusCode) -> Self {
        let (code, message) = match status {
            StatusCode::SERVICE_UNAVAILABLE => (
                "ServiceUnavailable",
                "The service is temporarily unavailable.",
            ),
            StatusCode::GATEWAY_TIMEOUT => ("GatewayTimeout", "The gateway timed out."),
            StatusCode::BAD_GATEWAY => ("BadGateway", "Bad Gateway"),
            _ => ("InternalServerError", "An internal server error occurred."),
        };
        Self {
            html: status == StatusCode::BAD_GATEWAY,
            ..Self::new(status, code, message)
        }
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let (content_type, body) = if self.html {
            (
                "text/html",
                format!(
                    "<html><head><title>502 Bad Gateway</title></head><body><h1>{}</h1></body></html>",
                    self.message
                ),
            )
        } else {
            let mut body = json!({
                "error": {
                    "code": self.code,
                    "message": self.message,
                    "innerError": {
                        "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        "request-id": current_request_id(),
                        "client-request-id": current_request_id(),
                    }
                }
            });
            if self.app_wide {
                let inner = &mut body["error"]["innerError"];
                inner["code"] = json!("429");
                inner["message"] = json!("Please retry after");
                inner["status"] = json!("429");
            }
            (ODATA_JSON, body.to_string())
        };
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\""),
            );
        }
        response
    }
}

/// A JSON answer with Graph's content type.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ODATA_JSON));
    response
}
