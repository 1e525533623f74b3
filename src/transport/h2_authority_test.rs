//! Tests of the `:authority` sanitizer: Huffman coding, same-length rewriting, frame handling
//! and an end-to-end hyper server.

use std::convert::Infallible;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

const HTTP_AUTHORITY: &[u8] = b"http://127.0.0.1:2379";
const INITIALLY: &[u8] = b"#initially=[https://example.com:2379]";
/// RFC 7541 C.4 and C.6.
const RFC_VECTORS: [(&str, &str); 8] = [
    ("www.example.com", "f1e3c2e5f23a6ba0ab90f4ff"),
    ("no-cache", "a8eb10649cbf"),
    ("custom-key", "25a849e95ba97d7f"),
    ("custom-value", "25a849e95bb8e8b4bf"),
    ("302", "6402"),
    ("private", "aec3771a4b"),
    (
        "Mon, 21 Oct 2013 20:13:21 GMT",
        "d07abe941054d444a8200595040b8166e082a62d1bff",
    ),
    ("https://www.example.com", "9d29ad171863c78f0b97c8e9ae82ae43d3"),
];
const ES_EH: u8 = FLAG_END_STREAM | FLAG_END_HEADERS;

/// Canonical-code encoder (checked against the RFC 7541 examples below).
fn huffman_encode(s: &[u8]) -> Vec<u8> {
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u64, 0);
    for &b in s {
        let len = usize::from(HUFFMAN_CODE_BITS[usize::from(b)]);
        let group = &CANONICAL.symbols[CANONICAL.offset[len]..];
        let index = group.iter().position(|&symbol| symbol == u16::from(b)).unwrap();
        acc = (acc << len) | (u64::from(CANONICAL.first_code[len]) + index as u64);
        bits += len;
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if bits > 0 {
        out.push((acc << (8 - bits)) as u8 | 0xff >> bits);
    }
    out
}

fn lit(s: &[u8], huffman: bool) -> Vec<u8> {
    let mut out = Vec::new();
    put_plain_string(&mut out, &if huffman { huffman_encode(s) } else { s.to_vec() });
    out[0] |= if huffman { 0x80 } else { 0 };
    out
}

/// `:method POST`, `:scheme http`, `:path`, then `authority`, then `x-a: 1` (incremental indexing).
fn request(path: &[u8], authority: &[u8]) -> Vec<u8> {
    [
        &[0x83, 0x86, 0x04][..],
        &lit(path, false),
        authority,
        &[0x40],
        &lit(b"x-a", true),
        &lit(b"1", false),
    ]
    .concat()
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    put_frame_header(&mut out, payload.len(), kind, flags, stream.to_be_bytes());
    [&out[..], payload].concat()
}

fn conn(frames: &[Vec<u8>]) -> Vec<u8> {
    [PREFACE.to_vec(), frame(0x4, 0, 0, &[]), frames.concat()].concat()
}

/// Hands out `chunk` bytes per read, returning `Pending` (and waking) before each one.
struct Trickle(Vec<u8>, usize, usize, bool);

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Trickle(data, pos, chunk, pending) = &mut *self;
        *pending = !*pending;
        if *pending {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let n = (*chunk).min(data.len() - *pos).min(buf.remaining());
        buf.put_slice(&data[*pos..*pos + n]);
        *pos += n;
        Poll::Ready(Ok(()))
    }
}

/// Runs `input` through the sanitizer with various read sizes; all must give the same output.
async fn sanitize(input: &[u8]) -> Vec<u8> {
    let mut outputs = Vec::new();
    for (chunk, read_size) in [(1 << 20, 1 << 20), (1, 1), (1, 64 << 10), (7, 3), (4096, 100)] {
        if input.len() > 1 << 16 && chunk < 4096 {
            continue; // keep the > 1 MiB case fast
        }
        let mut s = AuthoritySanitizer::new(Trickle(input.to_vec(), 0, chunk, false));
        let (mut out, mut buf) = (Vec::new(), vec![0; read_size]);
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        outputs.push(out);
    }
    assert!(
        outputs.iter().all(|o| *o == outputs[0]),
        "output depends on read sizes"
    );
    outputs.swap_remove(0)
}

#[test]
fn huffman_coding_matches_rfc7541() {
    for (text, hex) in RFC_VECTORS {
        let coded: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(huffman_encode(text.as_bytes()), coded, "{text}");
        assert_eq!(huffman_decode(&coded).as_deref(), Some(text.as_bytes()));
    }
    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(huffman_decode(&huffman_encode(&all)), Some(all));
    assert_eq!(huffman_decode(&[0x07]).as_deref(), Some(&b"0"[..]));
    assert_eq!(huffman_decode(&[0x00]), None); // zero padding
    assert_eq!(huffman_decode(&[0xff]), None); // padding longer than 7 bits
    assert_eq!(huffman_decode(&[0xff; 4]), None); // EOS
}

#[test]
fn sanitized_values_keep_length_and_parse() {
    assert_eq!(
        sanitize_authority(HTTP_AUTHORITY).as_deref(),
        Some(&b"http---127.0.0.1:2379"[..])
    );
    let initially = b"-initially=-https---example.com-2379-";
    assert_eq!(sanitize_authority(INITIALLY).as_deref(), Some(&initially[..]));
    for valid in [
        &b""[..],
        b"127.0.0.1:2379",
        b"[::1]:2379",
        b"u@etcd-0.etcd:1",
        b"localhost",
    ] {
        assert_eq!(sanitize_authority(valid), None);
    }
    for invalid in [
        &b"a:b:c"[..],
        b"h\xffst:123456",
        b"::",
        b"[::1",
        b"a b'(c)*:80",
        b"x@",
        b"%zz/?#",
    ] {
        let sanitized = sanitize_authority(invalid).unwrap();
        assert_eq!(sanitized.len(), invalid.len());
        assert!(Authority::try_from(sanitized.as_slice()).is_ok(), "{sanitized:?}");
    }
}

#[tokio::test]
async fn valid_authority_is_untouched() {
    for huffman in [false, true] {
        let block = [
            request(b"/x", &[&[0x41][..], &lit(b"127.0.0.1:2379", huffman)].concat()),
            vec![0xbf],
        ];
        let input = conn(&[
            frame(TYPE_HEADERS, ES_EH, 1, &block.concat()),
            frame(0x0, 0x1, 1, b"xyz"),
        ]);
        assert_eq!(sanitize(&input).await, input);
    }
}

#[tokio::test]
async fn invalid_authorities_are_rewritten_in_every_representation() {
    for value in [HTTP_AUTHORITY, INITIALLY] {
        let sanitized = sanitize_authority(value).unwrap();
        for huffman in [false, true] {
            for (first, name) in [
                (0x41, false),
                (0x01, false),
                (0x11, false),
                (0x40, true),
                (0x10, true),
            ] {
                let name = if name { lit(AUTHORITY, huffman) } else { Vec::new() };
                let field = |v: &[u8], h| [&[first][..], &name, &lit(v, h)].concat();
                let (block, expected) = (
                    request(b"/x", &field(value, huffman)),
                    request(b"/x", &field(&sanitized, false)),
                );
                let data = frame(0x0, 0x1, 1, &[7; 100]);
                let input = conn(&[frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &block), data.clone()]);
                let output = conn(&[frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &expected), data]);
                assert_eq!(sanitize(&input).await, output);
            }
        }
    }
}

#[tokio::test]
async fn padding_is_dropped_and_continuations_are_merged_or_resplit() {
    let field = |v: &[u8], h| [&[0x41][..], &lit(v, h)].concat();
    let (block, expected) = (
        request(b"/x", &field(HTTP_AUTHORITY, true)),
        request(b"/x", &field(b"http---127.0.0.1:2379", false)),
    );
    let priority = [0x80, 0, 0, 0, 15];
    let padded = [&[3][..], &priority, &block[..4], &[0; 3]].concat();
    let input = conn(&[
        frame(
            TYPE_HEADERS,
            FLAG_END_STREAM | FLAG_PADDED | FLAG_PRIORITY,
            1,
            &padded,
        ),
        frame(TYPE_CONTINUATION, 0, 1, &block[4..9]),
        frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, &block[9..]),
    ]);
    let merged = [&priority[..], &expected].concat();
    assert_eq!(
        sanitize(&input).await,
        conn(&[frame(TYPE_HEADERS, ES_EH | FLAG_PRIORITY, 1, &merged)])
    );
    // A valid block keeps its frames, padding included.
    let valid = request(b"/x", &[0x41, 1, b'a']);
    let input = conn(&[
        frame(
            TYPE_HEADERS,
            FLAG_PADDED,
            1,
            &[&[2][..], &valid[..3], &[0; 2]].concat(),
        ),
        frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, &valid[3..]),
    ]);
    assert_eq!(sanitize(&input).await, input);
    // A rewritten block above one frame is split at MAX_FRAME_PAYLOAD_BYTES.
    let big = [&[0x00][..], &lit(b"x-big", false), &lit(&[b'a'; 20_000], false)].concat();
    let (block, expected) = ([big.clone(), block].concat(), [big, expected].concat());
    let input = conn(&[
        frame(TYPE_HEADERS, FLAG_END_STREAM, 1, &block[..10_000]),
        frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, &block[10_000..]),
    ]);
    let (first, rest) = expected.split_at(MAX_FRAME_PAYLOAD_BYTES);
    let output = conn(&[
        frame(TYPE_HEADERS, FLAG_END_STREAM, 1, first),
        frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, rest),
    ]);
    assert_eq!(sanitize(&input).await, output);
}

#[tokio::test]
async fn non_http2_and_malformed_input_pass_through() {
    let bad = request(b"/x", &[&[0x41][..], &lit(HTTP_AUTHORITY, false)].concat());
    let bad_headers = frame(TYPE_HEADERS, ES_EH, 3, &bad);
    let huge = frame(TYPE_CONTINUATION, 0, 1, &[0; MAX_FRAME_PAYLOAD_BYTES]);
    let inputs = [
        b"GET / HTTP/1.1\r\nHost: http://127.0.0.1:2379\r\n\r\n".to_vec(),
        [b"PRI * HTTP/1.1\r\n\r\n", &bad_headers[..]].concat(),
        PREFACE[..10].to_vec(),
        conn(&[
            frame(TYPE_HEADERS, ES_EH, 1, &[0x41, 0x10, b'h']),
            bad_headers.clone(),
        ]), // truncated HPACK
        conn(&[
            frame(TYPE_HEADERS, ES_EH | FLAG_PADDED, 1, &[9, 0x82]),
            bad_headers.clone(),
        ]), // padding
        conn(&[frame(TYPE_HEADERS, 0, 1, &[0x82]), bad_headers.clone()]), // no CONTINUATION
        conn(&[
            frame(TYPE_HEADERS, 0, 1, &bad),
            frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 3, &[]),
        ]),
        conn(&[
            frame(TYPE_HEADERS, 0, 1, &bad),
            vec![huge; 70].concat(),
            bad_headers.clone(),
        ]), // > 1 MiB
        conn(&[frame(TYPE_HEADERS, ES_EH, 1, &bad)])[..60].to_vec(), // EOF inside a frame
    ];
    for input in inputs {
        assert_eq!(sanitize(&input).await, input);
    }
}

#[tokio::test]
async fn data_payload_is_streamed_not_buffered() {
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let partial = [
        conn(&[]),
        frame(0x0, 0, 1, &[5; 100_000])[..FRAME_HEADER_BYTES + 10].to_vec(),
    ]
    .concat();
    client.write_all(&partial).await.unwrap();
    let mut out = vec![0; partial.len()];
    let mut sanitizer = AuthoritySanitizer::new(server);
    tokio::time::timeout(Duration::from_secs(5), sanitizer.read_exact(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out, partial);
}

/// Feeds raw client bytes to a hyper server; returns the authorities its service saw
/// and, per stream, `None` for a response or `Some(code)` for RST_STREAM/GOAWAY.
async fn serve(input: Vec<u8>, sanitize: bool, streams: usize) -> (Vec<String>, Vec<(u32, Option<u32>)>) {
    let (mut client, server) = tokio::io::duplex(1 << 20);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        tx.send(req.uri().authority().map(ToString::to_string).unwrap_or_default())
            .unwrap();
        async { Ok::<_, Infallible>(http::Response::new(String::new())) }
    });
    // As in `server::serve`: hyper-util's auto (HTTP/1 + HTTP/2) builder.
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http2().max_header_list_size(1 << 20);
    let _server = tokio::spawn(async move {
        if sanitize {
            let io = TokioIo::new(AuthoritySanitizer::new(server));
            builder.serve_connection_with_upgrades(io, service).await
        } else {
            builder
                .serve_connection_with_upgrades(TokioIo::new(server), service)
                .await
        }
    });
    client.write_all(&input).await.unwrap();
    let (mut outcomes, mut buf) = (Vec::new(), Vec::new());
    let read_outcomes = async {
        while outcomes.len() < streams {
            assert_ne!(client.read_buf(&mut buf).await.unwrap(), 0);
            while let Some(header) = FrameHeader::parse(&buf).filter(|h| buf.len() >= 9 + h.len) {
                let at = if header.kind == 0x7 { 17 } else { 9 }; // GOAWAY / RST_STREAM code
                let code = buf
                    .get(at..at + 4)
                    .map(|c| u32::from_be_bytes(c.try_into().unwrap()));
                match header.kind {
                    TYPE_HEADERS => outcomes.push((u32::from_be_bytes(header.stream), None)),
                    0x3 | 0x7 => outcomes.push((u32::from_be_bytes(header.stream), code)),
                    _ => {}
                }
                buf.drain(..9 + header.len);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read_outcomes)
        .await
        .unwrap();
    drop(client);
    let mut authorities = Vec::new();
    while let Ok(authority) = rx.try_recv() {
        authorities.push(authority);
    }
    (authorities, outcomes)
}

/// Two requests whose dynamic table (max size set to exactly fit the `:authority` and `x-a`
/// entries) would lose the `:authority` entry if its size changed; the second request refers
/// to it by index.
fn two_requests(value: &[u8], huffman: bool, split: bool) -> Vec<u8> {
    let table_size = u8::try_from(AUTHORITY.len() + value.len() + 32 + 3 + 1 + 32).unwrap();
    let first = [
        &[0x3f, table_size - 31][..],
        &request(b"/x", &[&[0x41][..], &lit(value, huffman)].concat()),
    ]
    .concat();
    let second = [&[0x83, 0x86, 0x04][..], &lit(b"/y", false), &[0xbf, 0xbe]].concat();
    let first = if split {
        let padded = [&[4][..], &[0, 0, 0, 0, 15], &first[..6], &[0; 4]].concat();
        vec![
            frame(
                TYPE_HEADERS,
                FLAG_END_STREAM | FLAG_PADDED | FLAG_PRIORITY,
                1,
                &padded,
            ),
            frame(TYPE_CONTINUATION, 0, 1, &first[6..20]),
            frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, &first[20..]),
        ]
    } else {
        vec![frame(TYPE_HEADERS, ES_EH, 1, &first)]
    };
    conn(&[first.concat(), frame(TYPE_HEADERS, ES_EH, 3, &second)])
}

#[tokio::test]
async fn hyper_server_accepts_sanitized_authority() {
    let (authorities, outcomes) = serve(two_requests(HTTP_AUTHORITY, false, false), false, 2).await;
    assert_eq!(
        (authorities.len(), outcomes),
        (0, vec![(1, Some(1)), (3, Some(1))])
    ); // PROTOCOL_ERROR
    for (value, huffman, split) in [
        (HTTP_AUTHORITY, false, false),
        (HTTP_AUTHORITY, true, true),
        (INITIALLY, true, false),
        (INITIALLY, false, true),
    ] {
        let (authorities, outcomes) = serve(two_requests(value, huffman, split), true, 2).await;
        let sanitized = String::from_utf8(sanitize_authority(value).unwrap()).unwrap();
        assert_eq!(authorities, [sanitized.clone(), sanitized]);
        assert_eq!(outcomes, [(1, None), (3, None)]);
    }
}
