//! etcd's grpc-gateway JSON API on the client port (`--enable-grpc-gateway`, default true):
//! `POST /v3/<service>/<op>` with a JSON body, answered with JSON. The path list is etcd's
//! generated gateway (`etcdserverpb/gw/rpc.pb.gw.go`, `v3lockpb/gw`, `v3electionpb/gw`) of 3.4
//! plus what 3.5 added (`/v3/auth/status`, `/v3/maintenance/hashkv`, `/v3/maintenance/downgrade`);
//! `/v3beta/...` is rewritten to `/v3/...` as etcd's `accessController` does.
//!
//! Every call goes to the same service implementation the gRPC server uses, in process, so
//! results and errors are identical; only the encoding differs (see `codec`, `stream`).
//! Deliberate differences from etcd: JSON syntax error texts are serde's, not Go's (same code 3 /
//! HTTP 400); no CORS headers; no websocket upgrade (etcd wraps the gateway in `wsproxy`).

mod codec;
mod routes;
mod stream;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Status;
use tonic::metadata::{MetadataKey, MetadataValue};

use crate::api::auth::AuthService;
use crate::api::cluster::ClusterService;
use crate::api::election::ElectionService;
use crate::api::kv::KvService;
use crate::api::lease::LeaseService;
use crate::api::lock::LockService;
use crate::api::maintenance::MaintenanceService;
use crate::api::watch::WatchService;
use crate::config::limits::GATEWAY_JSON_BYTES_PER_MESSAGE_BYTE;
use codec::{JsonReader, ReadError};
use routes::Op;

/// The service implementations the gateway calls (shared with the gRPC server).
pub struct Services {
    /// KV.
    pub kv: Arc<KvService>,
    /// Watch.
    pub watch: Arc<WatchService>,
    /// Lease.
    pub lease: Arc<LeaseService>,
    /// Cluster.
    pub cluster: Arc<ClusterService>,
    /// Maintenance.
    pub maintenance: Arc<MaintenanceService>,
    /// Auth (answers Unimplemented for now).
    pub auth: Arc<AuthService>,
    /// v3lock.
    pub lock: Arc<LockService>,
    /// v3election.
    pub election: Arc<ElectionService>,
}

/// The gateway: services plus the request size limit.
pub struct Gateway {
    services: Services,
    /// One permit per call in flight, `--max-concurrent-streams` in all: etcd's gateway reaches
    /// the server over one gRPC connection, so calls beyond the limit wait (etcd's
    /// `v3_curl_maxstream_test.go`).
    calls: Arc<tokio::sync::Semaphore>,
    /// Largest request message, in protobuf-encoded bytes: the gRPC server's max receive size
    /// (`--max-request-bytes` + 512 KiB).
    max_message_bytes: usize,
}

impl Gateway {
    /// A gateway over `services` accepting request messages of up to `max_message_bytes`
    /// (encoded), like the gRPC server.
    pub fn new(services: Services, max_message_bytes: usize, max_calls: u32) -> Gateway {
        let permits = usize::try_from(max_calls)
            .unwrap_or(usize::MAX)
            .min(tokio::sync::Semaphore::MAX_PERMITS);
        Gateway {
            services,
            calls: Arc::new(tokio::sync::Semaphore::new(permits)),
            max_message_bytes,
        }
    }

    /// Most JSON bytes buffered for one request message.
    fn json_limit(&self) -> usize {
        self.max_message_bytes
            .saturating_mul(GATEWAY_JSON_BYTES_PER_MESSAGE_BYTE)
    }
}

/// Adds the gateway's routes (`/v3/*`, `/v3beta/*`) to `router`.
pub fn routes(router: Router, gateway: Arc<Gateway>) -> Router {
    let gateway_routes = Router::new()
        .route("/v3/", any(handle))
        .route("/v3/{*op}", any(handle))
        .route("/v3beta/", any(handle))
        .route("/v3beta/{*op}", any(handle))
        .with_state(gateway);
    router.merge(gateway_routes)
}

async fn handle(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let path = request.uri().path();
    let op = path
        .strip_prefix("/v3/")
        .or_else(|| path.strip_prefix("/v3beta/"))
        .and_then(Op::parse);
    let Some(op) = op else {
        // grpc-gateway's mux: `http.Error(w, "Not Found", 404)`.
        return plain(StatusCode::NOT_FOUND, "Not Found\n");
    };
    if request.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
    }
    let Ok(permit) = gateway.calls.clone().acquire_owned().await else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n");
    };
    let (parts, body) = request.into_parts();
    let input = Input {
        headers: parts.headers,
        reader: JsonReader::new(body, gateway.json_limit()),
    };
    let response = routes::dispatch(&gateway, op, input).await;
    // The call holds its permit until its response body (a stream for Watch) is finished.
    let (parts, body) = response.into_parts();
    let body = futures::StreamExt::map(body.into_data_stream(), move |chunk| {
        let _held = &permit;
        chunk
    });
    Response::from_parts(parts, axum::body::Body::from_stream(body))
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        text,
    )
        .into_response()
}

/// One gateway request: its headers (forwarded as gRPC metadata) and its body.
pub(crate) struct Input {
    headers: HeaderMap,
    reader: JsonReader,
}

/// `message` as a tonic request carrying the forwarded metadata: `Grpc-Metadata-<key>` headers
/// become `<key>` and `Authorization` stays `authorization` (grpc-gateway v1
/// `DefaultHeaderMatcher`), e.g. `Grpc-Metadata-hasleader: true` for a watch.
fn with_metadata<T>(headers: &HeaderMap, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    for (name, value) in headers {
        let key = match name.as_str().strip_prefix("grpc-metadata-") {
            Some(k) => k,
            None if name == header::AUTHORIZATION => "authorization",
            None => continue,
        };
        let Ok(key) = MetadataKey::from_bytes(key.as_bytes()) else {
            continue;
        };
        if let Ok(value) = value.to_str().map(MetadataValue::try_from)
            && let Ok(value) = value
        {
            request.metadata_mut().append(key, value);
        }
    }
    request
}

impl Gateway {
    /// The status for a request that cannot be read: a malformed one is `malformed` (grpc-gateway
    /// v1 answers InvalidArgument for unary calls, Unknown for the first message of a stream);
    /// one over the limit gets grpc-go's `ResourceExhausted` text, as the gRPC path answers.
    fn read_error(&self, e: ReadError, malformed: fn(String) -> Status) -> Status {
        match e {
            ReadError::Json(text) | ReadError::Body(text) => malformed(text),
            ReadError::TooLarge(n) => crate::api::interceptor::oversize_status(n, self.max_message_bytes),
        }
    }

    /// Decodes the request (an empty body is the default message) and checks its encoded size
    /// against the gRPC receive limit.
    async fn decode<Req>(&self, input: &mut Input) -> Result<Req, Status>
    where
        Req: DeserializeOwned + Message + Default,
    {
        let request = match input.reader.next::<Req>().await {
            Ok(r) => r.unwrap_or_default(),
            Err(e) => return Err(self.read_error(e, Status::invalid_argument)),
        };
        self.check_size(&request)?;
        Ok(request)
    }

    fn check_size<Req: Message>(&self, request: &Req) -> Result<(), Status> {
        let len = request.encoded_len();
        if len > self.max_message_bytes {
            return Err(crate::api::interceptor::oversize_status(
                len,
                self.max_message_bytes,
            ));
        }
        Ok(())
    }

    /// A unary call: decode, call, encode.
    async fn unary<Req, Resp, F, Fut>(&self, mut input: Input, call: F) -> Response
    where
        Req: DeserializeOwned + Message + Default,
        Resp: Serialize,
        F: FnOnce(tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        let request = match self.decode::<Req>(&mut input).await {
            Ok(r) => with_metadata(&input.headers, r),
            Err(s) => return codec::error_response(&s),
        };
        match call(request).await {
            Ok(response) => codec::message_response(response.get_ref()),
            Err(s) => codec::error_response(&s),
        }
    }

    /// A server-streaming call (Snapshot, Observe).
    async fn server_stream<Req, Resp, S, F, Fut>(&self, mut input: Input, call: F) -> Response
    where
        Req: DeserializeOwned + Message + Default,
        Resp: Serialize + Send + 'static,
        S: futures::Stream<Item = Result<Resp, Status>> + Send + 'static,
        F: FnOnce(tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<S>, Status>>,
    {
        let request = match self.decode::<Req>(&mut input).await {
            Ok(r) => with_metadata(&input.headers, r),
            Err(s) => return codec::error_response(&s),
        };
        match call(request).await {
            Ok(response) => stream::respond(Box::pin(response.into_inner()), None).await,
            Err(s) => codec::error_response(&s),
        }
    }

    /// A bidirectional call (Watch, LeaseKeepAlive).
    async fn bidi<Req, Resp, S, F, Fut>(
        &self,
        mut input: Input,
        after: stream::AfterBody,
        call: F,
    ) -> Response
    where
        Req: DeserializeOwned + Message + Default + Send + 'static,
        Resp: Serialize + Send + 'static,
        S: futures::Stream<Item = Result<Resp, Status>> + Send + 'static,
        F: FnOnce(tonic::Request<tonic::Streaming<Req>>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<S>, Status>>,
    {
        let first = match input.reader.next::<Req>().await {
            Ok(f) => f,
            Err(e) => return codec::error_response(&self.read_error(e, Status::unknown)),
        };
        let Input { headers, reader } = input;
        let (requests, guard) = stream::request_stream(first, reader, after, self.max_message_bytes);
        match call(with_metadata(&headers, requests)).await {
            Ok(response) => stream::respond(Box::pin(response.into_inner()), Some(guard)).await,
            Err(s) => codec::error_response(&s),
        }
    }
}
