//! Response rewriting that makes transport-level gRPC errors read like grpc-go's, which is what
//! etcd clients see from etcd.

use axum::response::Response;
use tonic::{Code, Status};

/// Rewrites tonic's "decoded message length too large" (code OutOfRange) into grpc-go's
/// `grpc: received message larger than max (N vs. M)` with code ResourceExhausted, as etcd
/// answers a request above `--max-request-bytes` + 512 KiB (etcd-compat.md §2.11).
pub async fn grpc_go_errors(mut response: Response) -> Response {
    let Some(status) = Status::from_header_map(response.headers()) else {
        return response;
    };
    if status.code() != Code::OutOfRange {
        return response;
    }
    let Some((found, limit)) = oversize_numbers(status.message()) else {
        return response;
    };
    let rewritten = oversize_status(found, limit);
    // `add_header` only fails for messages that cannot be encoded; this one always can.
    if rewritten.add_header(response.headers_mut()).is_err() {
        tracing::debug!("could not rewrite an oversize gRPC status");
    }
    response
}

/// grpc-go's status for a received message of `found` bytes over the `limit` (ResourceExhausted
/// `grpc: received message larger than max (N vs. M)`); also used by the JSON gateway.
pub fn oversize_status(found: impl std::fmt::Display, limit: impl std::fmt::Display) -> Status {
    Status::resource_exhausted(format!(
        "grpc: received message larger than max ({found} vs. {limit})"
    ))
}

/// Extracts (found, limit) from tonic's "Error, decoded message length too large: found N
/// bytes, the limit is: M bytes".
fn oversize_numbers(message: &str) -> Option<(u64, u64)> {
    let rest = message.strip_prefix("Error, decoded message length too large: found ")?;
    let (found, rest) = rest.split_once(" bytes, the limit is: ")?;
    let limit = rest.strip_suffix(" bytes")?;
    Some((found.parse().ok()?, limit.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tonic_oversize_text_is_parsed() {
        let m = "Error, decoded message length too large: found 2200011 bytes, the limit is: 2097152 bytes";
        assert_eq!(oversize_numbers(m), Some((2_200_011, 2_097_152)));
        assert_eq!(oversize_numbers("something else"), None);
    }
}
