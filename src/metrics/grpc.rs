//! gRPC accounting as etcd's go-grpc-prometheus interceptors and its counting codec do it:
//! `grpc_server_started_total`, `grpc_server_handled_total` (with the Go name of the final
//! status code), `grpc_server_msg_received_total` / `_msg_sent_total` (one per protobuf
//! message), `etcd_network_client_grpc_received_bytes_total` / `_sent_bytes_total` (protobuf
//! message bytes, v3rpc/codec.go) and `etcd_server_client_requests_total` (v3rpc
//! interceptor.go, from the `client-api-version` metadata).
//!
//! Messages are counted from the gRPC length-prefixed framing of the request and response
//! bodies; the final code is read from the trailers (or from the headers of a trailers-only
//! response). A response body dropped before its end (the client went away) is handled as
//! `Canceled`, as grpc-go reports it.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use prometheus::{IntCounter, IntCounterVec};

use super::{METRICS, Metrics};

const UNARY: &str = "unary";
const SERVER_STREAM: &str = "server_stream";
const BIDI_STREAM: &str = "bidi_stream";

/// Every method etcd 3.5 registers on its gRPC server before go-grpc-prometheus initializes
/// the counters (etcd `v3rpc/grpc.go`: `grpc_prometheus.Register(grpcServer)`), with its
/// `grpc_type`. Their counters are exported at 0 from the start, as etcd's are.
const PREINITIALIZED: &[(&str, &[(&str, &str)])] = &[
    (
        "etcdserverpb.KV",
        &[
            ("Range", UNARY),
            ("Put", UNARY),
            ("DeleteRange", UNARY),
            ("Txn", UNARY),
            ("Compact", UNARY),
        ],
    ),
    ("etcdserverpb.Watch", &[("Watch", BIDI_STREAM)]),
    (
        "etcdserverpb.Lease",
        &[
            ("LeaseGrant", UNARY),
            ("LeaseRevoke", UNARY),
            ("LeaseKeepAlive", BIDI_STREAM),
            ("LeaseTimeToLive", UNARY),
            ("LeaseLeases", UNARY),
        ],
    ),
    (
        "etcdserverpb.Cluster",
        &[
            ("MemberAdd", UNARY),
            ("MemberRemove", UNARY),
            ("MemberUpdate", UNARY),
            ("MemberList", UNARY),
            ("MemberPromote", UNARY),
        ],
    ),
    (
        "etcdserverpb.Maintenance",
        &[
            ("Alarm", UNARY),
            ("Status", UNARY),
            ("Defragment", UNARY),
            ("Hash", UNARY),
            ("HashKV", UNARY),
            ("Snapshot", SERVER_STREAM),
            ("MoveLeader", UNARY),
            ("Downgrade", UNARY),
        ],
    ),
    (
        "etcdserverpb.Auth",
        &[
            ("AuthEnable", UNARY),
            ("AuthDisable", UNARY),
            ("AuthStatus", UNARY),
            ("Authenticate", UNARY),
            ("UserAdd", UNARY),
            ("UserGet", UNARY),
            ("UserList", UNARY),
            ("UserDelete", UNARY),
            ("UserChangePassword", UNARY),
            ("UserGrantRole", UNARY),
            ("UserRevokeRole", UNARY),
            ("RoleAdd", UNARY),
            ("RoleGet", UNARY),
            ("RoleList", UNARY),
            ("RoleDelete", UNARY),
            ("RoleGrantPermission", UNARY),
            ("RoleRevokePermission", UNARY),
        ],
    ),
    (
        "grpc.health.v1.Health",
        &[("Check", UNARY), ("Watch", SERVER_STREAM)],
    ),
];

/// grpc-go's codes by their Go names, in go-grpc-prometheus' `allCodes` order.
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "Unauthenticated",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
];

/// Exports the counters of every [`PREINITIALIZED`] method at 0 (all codes for `handled`).
pub(super) fn initialize(m: &Metrics) {
    for (service, methods) in PREINITIALIZED {
        for (method, kind) in *methods {
            let labels = [*kind, *service, *method];
            m.grpc_started.with_label_values(&labels);
            m.grpc_msg_received.with_label_values(&labels);
            m.grpc_msg_sent.with_label_values(&labels);
            for code in CODES {
                m.grpc_handled
                    .with_label_values(&[*kind, *service, *method, code]);
            }
        }
    }
}

/// The `grpc_type` of a method: from [`PREINITIALIZED`], else the streaming methods of the
/// Lock and Election services (Election.Observe streams), else unary.
pub(super) fn grpc_type(service: &str, method: &str) -> &'static str {
    let known = PREINITIALIZED
        .iter()
        .filter(|(s, _)| *s == service)
        .flat_map(|(_, methods)| methods.iter())
        .find(|(m, _)| *m == method)
        .map(|(_, kind)| *kind);
    match (known, service, method) {
        (Some(kind), _, _) => kind,
        (None, "v3electionpb.Election", "Observe") => SERVER_STREAM,
        _ => UNARY,
    }
}

/// The Go name of a gRPC code, as the `grpc_code` label carries it.
pub(super) fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

/// Axum middleware around the gRPC router: accounts every request whose content type is
/// `application/grpc*` (path `/<service>/<method>`); other HTTP requests pass untouched.
pub async fn grpc_layer(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let is_grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    let path = request.uri().path().to_string();
    let call = path.strip_prefix('/').and_then(|p| p.split_once('/'));
    let (Some(m), Some((service, method)), true) = (METRICS.as_ref(), call, is_grpc) else {
        return next.run(request).await;
    };
    let kind = grpc_type(service, method);
    let labels = [kind, service, method];
    m.grpc_started.with_label_values(&labels).inc();
    let version = request
        .headers()
        .get("client-api-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown");
    let request_type = if kind == UNARY { "unary" } else { "stream" };
    m.client_requests
        .with_label_values(&[request_type, version])
        .inc();
    let (parts, body) = request.into_parts();
    let counted = Counted::new(
        body,
        m.grpc_msg_received.with_label_values(&labels),
        m.grpc_received_bytes.clone(),
        None,
    );
    let response = next
        .run(axum::extract::Request::from_parts(parts, Body::new(counted)))
        .await;
    let (parts, body) = response.into_parts();
    let mut handled = Handled {
        vec: m.grpc_handled.clone(),
        labels: [kind.to_string(), service.to_string(), method.to_string()],
        header_code: tonic::Status::from_header_map(&parts.headers).map(|s| s.code()),
        done: false,
    };
    if let Some(code) = handled.header_code {
        // A trailers-only response: the status is final already.
        handled.finish(code);
    }
    let counted = Counted::new(
        body,
        m.grpc_msg_sent.with_label_values(&labels),
        m.grpc_sent_bytes.clone(),
        Some(handled),
    );
    axum::response::Response::from_parts(parts, Body::new(counted))
}

/// Counts `grpc_server_handled_total` once per call.
struct Handled {
    vec: IntCounterVec,
    labels: [String; 3],
    header_code: Option<tonic::Code>,
    done: bool,
}

impl Handled {
    fn finish(&mut self, code: tonic::Code) {
        if self.done {
            return;
        }
        self.done = true;
        let [kind, service, method] = &self.labels;
        self.vec
            .with_label_values(&[kind.as_str(), service.as_str(), method.as_str(), code_name(code)])
            .inc();
    }

    /// The body ended without trailers: the status of the headers, else OK.
    fn finish_at_end(&mut self) {
        self.finish(self.header_code.unwrap_or(tonic::Code::Ok));
    }
}

/// Splits a byte stream into gRPC length-prefixed messages (1 flag byte, 4 length bytes).
#[derive(Default)]
pub(super) struct FrameCounter {
    header: [u8; 5],
    have: usize,
    remaining: u64,
}

impl FrameCounter {
    /// Feeds the next chunk; returns the messages that started in it and their payload bytes.
    pub(super) fn feed(&mut self, mut data: &[u8]) -> (u64, u64) {
        let (mut messages, mut bytes) = (0, 0);
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                self.remaining -= n as u64;
                data = &data[n..];
                continue;
            }
            let n = (self.header.len() - self.have).min(data.len());
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == self.header.len() {
                let len = u64::from(u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]));
                messages += 1;
                bytes += len;
                self.remaining = len;
                self.have = 0;
            }
        }
        (messages, bytes)
    }
}

/// A request or response body whose gRPC messages are counted as they pass.
struct Counted {
    inner: Body,
    frames: FrameCounter,
    messages: IntCounter,
    bytes: IntCounter,
    handled: Option<Handled>,
}

impl Counted {
    fn new(inner: Body, messages: IntCounter, bytes: IntCounter, handled: Option<Handled>) -> Counted {
        Counted {
            inner,
            frames: FrameCounter::default(),
            messages,
            bytes,
            handled,
        }
    }
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let (messages, bytes) = this.frames.feed(data);
                    this.messages.inc_by(messages);
                    this.bytes.inc_by(bytes);
                }
                if let (Some(trailers), Some(h)) = (frame.trailers_ref(), this.handled.as_mut()) {
                    let code = tonic::Status::from_header_map(trailers).map_or(tonic::Code::Ok, |s| s.code());
                    h.finish(code);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(h) = this.handled.as_mut() {
                    h.finish(tonic::Code::Unknown);
                }
            }
            Poll::Ready(None) => {
                if let Some(h) = this.handled.as_mut() {
                    h.finish_at_end();
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let ended = http_body::Body::is_end_stream(&self.inner);
        if let Some(h) = self.handled.as_mut() {
            if ended {
                h.finish_at_end();
            } else {
                h.finish(tonic::Code::Cancelled);
            }
        }
    }
}
