//! Streaming calls over the gateway (grpc-gateway v1 `ForwardResponseStream`): the response is
//! chunked newline-delimited JSON, one `{"result":{...}}` per message; an error ends it with
//! `{"error":{...}}`. Client-streaming requests (Watch, LeaseKeepAlive) read one message per
//! JSON value of the request body.
//!
//! No task is spawned here: the request side is a lazy stream over the HTTP body that the
//! service's own task polls, and the response side is the HTTP body. When the HTTP client goes
//! away hyper drops the response body, which drops the service's receiver and the guard that
//! keeps a Watch's request side open, so the service task ends too.

use std::pin::Pin;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;
use tonic::{Status, Streaming};

use super::codec::{self, JsonReader};

/// What a request stream does once the HTTP request body has ended.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum AfterBody {
    /// End the request stream (LeaseKeepAlive answers each request, then finishes).
    End,
    /// Keep it open until the HTTP response is dropped. etcd's Watch keeps watching after the
    /// client half-closes (`v3rpc/watch.go` recvLoop returns nil on EOF), which is how every
    /// gateway watch works: the body holds one create request and ends.
    HoldOpen,
}

/// The in-process `tonic::Streaming` of a client-streaming call: `first`, then one message per
/// further JSON value of the body. A later malformed value ends the stream (grpc-gateway stops
/// sending and half-closes). With [`AfterBody::HoldOpen`] the returned sender must live as long
/// as the HTTP response.
pub fn request_stream<Req>(
    first: Option<Req>,
    reader: JsonReader,
    after: AfterBody,
    max_message_bytes: usize,
) -> (Streaming<Req>, oneshot::Sender<()>)
where
    Req: DeserializeOwned + prost::Message + Default + Send + 'static,
{
    let (guard, released) = oneshot::channel::<()>();
    let rest = futures::stream::unfold(Some(reader), |state| async move {
        let mut reader = state?;
        match reader.next::<Req>().await {
            Ok(Some(m)) => Some((m, Some(reader))),
            _ => None,
        }
    });
    let messages = futures::stream::iter(first).chain(rest);
    let frames = messages
        .filter_map(|m| async move { codec::grpc_frame(&m) })
        .map(Ok::<Bytes, std::convert::Infallible>);
    let tail = futures::stream::once(async move {
        if after == AfterBody::HoldOpen {
            // Resolves (with an error) when the guard is dropped.
            let _ = released.await;
        }
    })
    .filter_map(|()| async { None });
    let body = Body::from_stream(frames.chain(tail));
    let streaming = Streaming::new_request(
        tonic_prost::ProstDecoder::<Req>::default(),
        body,
        None,
        Some(max_message_bytes),
    );
    (streaming, guard)
}

type Responses<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Turns a service's response stream into the HTTP response. Waits for the first item so that
/// an immediate error sets the HTTP status, as grpc-gateway does before its first write.
/// `guard` is kept alive by the response body.
pub async fn respond<T, S>(mut responses: S, guard: Option<oneshot::Sender<()>>) -> Response
where
    T: Serialize + Send + 'static,
    S: Stream<Item = Result<T, Status>> + Send + Unpin + 'static,
{
    let (status, first) = match responses.next().await {
        None => (StatusCode::OK, None),
        Some(Ok(m)) => (StatusCode::OK, Some(codec::result_chunk(&m))),
        Some(Err(s)) => (codec::http_status(s.code()), Some(Err(s))),
    };
    let rest: Responses<T> = if matches!(first, Some(Ok(_))) {
        Box::pin(responses)
    } else {
        Box::pin(futures::stream::empty())
    };
    let chunks = futures::stream::iter(first)
        .chain(rest.map(|r| r.and_then(|m| codec::result_chunk(&m))))
        .scan(false, |ended, item| {
            if *ended {
                return futures::future::ready(None);
            }
            let chunk = match item {
                Ok(bytes) => bytes,
                Err(s) => {
                    *ended = true;
                    codec::error_chunk(&s)
                }
            };
            futures::future::ready(Some(chunk))
        })
        .map(move |chunk| {
            let _keep = &guard;
            Ok::<Bytes, std::convert::Infallible>(chunk)
        });
    codec::stream_headers(status, Body::from_stream(chunks))
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;
    use crate::proto::etcdserverpb::WatchRequest;

    const CREATE: &str = r#"{"create_request":{"key":"eA=="}}"#;

    #[tokio::test]
    async fn a_held_request_stream_ends_only_when_the_response_is_dropped() {
        let reader = JsonReader::new(Body::from(CREATE), 1024);
        let (mut requests, guard) = request_stream::<WatchRequest>(None, reader, AfterBody::HoldOpen, 1024);
        assert!(requests.message().await.unwrap().is_some());
        // The body has ended but the stream stays open (etcd keeps half-closed watches).
        assert!(requests.message().now_or_never().is_none());
        drop(guard);
        assert!(requests.message().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_keepalive_request_stream_ends_with_the_body() {
        let reader = JsonReader::new(Body::from(format!("{CREATE}{CREATE}")), 1024);
        let first = Some(WatchRequest::default());
        let (mut requests, _guard) = request_stream::<WatchRequest>(first, reader, AfterBody::End, 1024);
        for _ in 0..3 {
            assert!(requests.message().await.unwrap().is_some());
        }
        assert!(requests.message().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_immediate_error_sets_the_http_status_and_ends_the_body() {
        let responses = futures::stream::iter([Err::<WatchRequest, _>(Status::unavailable(
            "etcdserver: no leader",
        ))]);
        let response = respond(responses, None).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(response.into_body(), 1024).await.unwrap();
        assert!(body.starts_with(br#"{"error":{"grpc_code":14,"#), "{body:?}");
    }
}
