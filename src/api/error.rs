//! API errors: a gRPC code and a message, rendered as KFP's JSON error body or a gRPC status.

use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    InvalidArgument = 3,
    /// A request body that did not arrive in time (HTTP 408).
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    /// A request body larger than the call accepts (HTTP 413).
    ResourceExhausted = 8,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: Code,
    pub message: String,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }
    pub fn not_found(id: &str) -> Self {
        Self::new(Code::NotFound, format!("Job {id} not found"))
    }

    /// The HTTP status grpc-gateway uses for this code (ours for a body too large or too slow).
    pub fn http_status(&self) -> u16 {
        match self.code {
            Code::InvalidArgument => 400,
            Code::DeadlineExceeded => 408,
            Code::ResourceExhausted => 413,
            Code::Unauthenticated => 401,
            Code::PermissionDenied => 403,
            Code::NotFound => 404,
            Code::AlreadyExists => 409,
            Code::Unavailable => 503,
            Code::Internal => 500,
        }
    }

    /// KFP's error body: `{"error", "code", "message", "details"}`, `details` holding an
    /// `api.Error` as KFP's (`util.ToGRPCError`) do.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": self.message, "code": self.code as i32, "message": self.message,
            "details": [{"@type": "type.googleapis.com/api.Error", "error_message": self.message,
                "error_details": self.message}]})
    }

    pub fn to_grpc(&self) -> tonic::Status {
        let code = tonic::Code::from_i32(self.code as i32);
        tonic::Status::new(code, self.message.clone())
    }

    /// Maps a Kubernetes error (done with the caller's identity) to the API's codes.
    pub fn from_kube(e: kube::Error, what: &str) -> Self {
        match &e {
            kube::Error::Api(s) => {
                let code = match s.code {
                    401 => Code::Unauthenticated,
                    403 => Code::PermissionDenied,
                    404 => Code::NotFound,
                    409 => Code::AlreadyExists,
                    400 | 422 => Code::InvalidArgument,
                    503 | 504 | 429 => Code::Unavailable,
                    _ => Code::Internal,
                };
                ApiError::new(code, format!("{what}: {}", s.message))
            }
            _ => ApiError::new(Code::Internal, format!("{what}: {e}")),
        }
    }
}
