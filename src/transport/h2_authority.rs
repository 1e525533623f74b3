//! Rewrites invalid HTTP/2 `:authority` values sent by etcd clients, before `h2` sees them.
//!
//! etcd clients do not always send a valid URI authority in the `:authority` pseudo-header:
//! etcdctl 3.4 (grpc-go of that era) sends the endpoint exactly as typed, e.g.
//! `http://127.0.0.1:2379`, and the etcd Go client v3.5.0 sent
//! `#initially=[https://example.com:2379]` (<https://github.com/etcd-io/etcd/issues/13192>).
//! grpc-go, which etcd serves with, accepts anything there, but the Rust `h2` server parses the
//! value with `http::uri::Authority` and resets the stream with `PROTOCOL_ERROR` ("malformed
//! headers: malformed authority") before the request reaches our code, so e.g.
//! `etcdctl --endpoints=http://127.0.0.1:2379 endpoint status` would fail against Mainstay.
//!
//! [`AuthoritySanitizer`] wraps an accepted connection. If the client starts with the HTTP/2
//! preface, the frame stream is parsed and the HPACK block of every HEADERS (+ CONTINUATION) frame
//! is walked structurally: representations are self-delimiting, so no dynamic-table state is
//! needed. Each `:authority` literal (static name index 1 or literal name) whose value
//! `Authority::try_from` rejects gets a sanitized value of the same length, so both peers'
//! dynamic tables keep identical sizes (entry size = name + value + 32) and later indexed
//! references resolve, on our side, to the sanitized value. The new value is emitted as a plain
//! (non-Huffman) literal and the frame is rebuilt without padding. DATA and all other frames stream
//! through byte for byte; non-HTTP/2 connections are untouched. On malformed input, or header
//! blocks above [`MAX_HEADER_BLOCK_BYTES`], rewriting stops for the rest of the connection and bytes
//! pass through unchanged, leaving the error to `h2`.
//!
//! Limits: an `:authority` literal whose *name* refers to a dynamic-table entry is not recognised
//! (grpc-go and h2 always use static index 1 for the name); an empty value stays empty.

use std::borrow::Cow;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{BufMut, BytesMut};
use http::uri::Authority;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Largest header block (its HEADERS and CONTINUATION frames, frame headers included) buffered
/// for rewriting, in bytes; a larger block switches the connection to plain pass-through.
pub const MAX_HEADER_BLOCK_BYTES: usize = 1024 * 1024;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_BYTES: usize = 9;
/// Initial SETTINGS_MAX_FRAME_SIZE (RFC 9113 §6.5.2): every HTTP/2 peer accepts frames this large.
const MAX_FRAME_PAYLOAD_BYTES: usize = 16_384;
const READ_CHUNK_BYTES: usize = 8 * 1024;
const PRIORITY_BYTES: usize = 5;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
const AUTHORITY: &[u8] = b":authority";

#[derive(Clone, Copy, Debug)]
struct FrameHeader {
    len: usize,
    kind: u8,
    flags: u8,
    stream: [u8; 4],
}

impl FrameHeader {
    fn parse(bytes: &[u8]) -> Option<Self> {
        let [l0, l1, l2, kind, flags, s0, s1, s2, s3] = *bytes.first_chunk::<FRAME_HEADER_BYTES>()?;
        let len = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
        Some(Self {
            len,
            kind,
            flags,
            stream: [s0, s1, s2, s3],
        })
    }
}

fn put_frame_header(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: [u8; 4]) {
    out.put_uint(len as u64, 3);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_slice(&stream);
}

#[derive(Clone, Copy, Debug)]
enum State {
    /// Matching the client preface; `matched` bytes of it have been seen (and passed on).
    Preface { matched: usize },
    /// Expecting the 9-byte header of the next frame.
    FrameHeader,
    /// Streaming the payload of a frame that is not rewritten.
    Payload { remaining: usize },
    /// Buffering a whole HEADERS or CONTINUATION frame.
    HeaderFrame(FrameHeader),
    /// Not HTTP/2, or rewriting was abandoned: every byte passes through.
    Passthrough,
}

/// A header block whose END_HEADERS has not been seen yet.
struct PendingBlock {
    headers: FrameHeader,
    priority: Option<[u8; PRIORITY_BYTES]>,
    fragment: Vec<u8>,
    /// The frames exactly as received, emitted unchanged when nothing is rewritten.
    raw: BytesMut,
}

/// Transparent connection wrapper that makes invalid HTTP/2 `:authority` values acceptable to
/// the `h2` server (see the [module documentation](self)). Writes pass through untouched.
pub struct AuthoritySanitizer<S> {
    inner: S,
    state: State,
    input: BytesMut,
    output: BytesMut,
    block: Option<PendingBlock>,
}

impl<S> AuthoritySanitizer<S> {
    /// Wraps a freshly accepted connection (plain TCP, or TLS after the handshake).
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            state: State::Preface { matched: 0 },
            input: BytesMut::new(),
            output: BytesMut::new(),
            block: None,
        }
    }

    /// The wrapped connection, e.g. for its peer address.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped connection. Reading from it directly would corrupt the sanitized stream.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes as much of `input` as possible, appending to `output`.
    fn process(&mut self) {
        loop {
            match self.state {
                State::Preface { .. } => return,
                State::Passthrough => {
                    self.output.extend_from_slice(&self.input);
                    self.input.clear();
                    return;
                }
                State::Payload { remaining } => {
                    let n = remaining.min(self.input.len());
                    if n == 0 {
                        return;
                    }
                    self.output.extend_from_slice(&self.input.split_to(n));
                    self.state = payload_state(remaining - n);
                }
                State::FrameHeader => match FrameHeader::parse(&self.input) {
                    Some(header) => self.on_frame_header(header),
                    None => return,
                },
                State::HeaderFrame(header) => {
                    if self.input.len() < FRAME_HEADER_BYTES + header.len {
                        return;
                    }
                    let frame = self.input.split_to(FRAME_HEADER_BYTES + header.len);
                    self.on_header_frame(header, frame);
                }
            }
        }
    }

    fn on_frame_header(&mut self, header: FrameHeader) {
        let buffered = match &self.block {
            Some(block) if header.kind == TYPE_CONTINUATION && header.stream == block.headers.stream => {
                block.raw.len()
            }
            // RFC 9113 §6.10: only CONTINUATION of the same stream may follow; h2 rejects the rest.
            Some(_) => return self.give_up(),
            None if header.kind == TYPE_HEADERS => 0,
            None => {
                self.output
                    .extend_from_slice(&self.input.split_to(FRAME_HEADER_BYTES));
                self.state = payload_state(header.len);
                return;
            }
        };
        if buffered + FRAME_HEADER_BYTES + header.len > MAX_HEADER_BLOCK_BYTES {
            return self.give_up();
        }
        self.state = State::HeaderFrame(header);
    }

    fn on_header_frame(&mut self, header: FrameHeader, frame: BytesMut) {
        self.state = State::FrameHeader;
        let payload = frame.get(FRAME_HEADER_BYTES..).unwrap_or_default();
        if let Some(block) = self.block.as_mut() {
            block.fragment.extend_from_slice(payload);
            block.raw.extend_from_slice(&frame);
        } else if let Some((priority, fragment)) = split_headers_payload(header.flags, payload) {
            let fragment = fragment.to_vec();
            self.block = Some(PendingBlock {
                headers: header,
                priority,
                fragment,
                raw: frame,
            });
        } else {
            self.output.extend_from_slice(&frame);
            return self.give_up();
        }
        if header.flags & FLAG_END_HEADERS != 0
            && let Some(block) = self.block.take()
        {
            self.finish(&block);
        }
    }

    fn finish(&mut self, block: &PendingBlock) {
        let Some(rewritten) = rewrite_block(&block.fragment) else {
            self.output.extend_from_slice(&block.raw);
            return self.give_up();
        };
        let Some(new_block) = rewritten else {
            self.output.extend_from_slice(&block.raw);
            return;
        };
        // The priority fields lead the HEADERS payload; the block follows, split into frames.
        let mut payload = block.priority.map_or_else(Vec::new, Vec::from);
        payload.extend_from_slice(&new_block);
        for (i, chunk) in payload.chunks(MAX_FRAME_PAYLOAD_BYTES).enumerate() {
            let (kind, mut flags) = match i {
                0 => (
                    TYPE_HEADERS,
                    block.headers.flags & (FLAG_END_STREAM | FLAG_PRIORITY),
                ),
                _ => (TYPE_CONTINUATION, 0),
            };
            if (i + 1) * MAX_FRAME_PAYLOAD_BYTES >= payload.len() {
                flags |= FLAG_END_HEADERS;
            }
            put_frame_header(&mut self.output, chunk.len(), kind, flags, block.headers.stream);
            self.output.extend_from_slice(chunk);
        }
    }

    /// Stops rewriting: everything buffered and everything after passes through unchanged.
    fn give_up(&mut self) {
        if let Some(block) = self.block.take() {
            self.output.extend_from_slice(&block.raw);
        }
        self.output.extend_from_slice(&self.input);
        self.input.clear();
        self.state = State::Passthrough;
    }
}

fn payload_state(remaining: usize) -> State {
    if remaining == 0 {
        State::FrameHeader
    } else {
        State::Payload { remaining }
    }
}

/// Splits a HEADERS payload into its priority fields and header block fragment, dropping padding.
fn split_headers_payload(flags: u8, payload: &[u8]) -> Option<(Option<[u8; PRIORITY_BYTES]>, &[u8])> {
    let mut rest = payload;
    let mut padding = 0;
    if flags & FLAG_PADDED != 0 {
        let (&pad, tail) = rest.split_first()?;
        padding = usize::from(pad);
        rest = tail;
    }
    let mut priority = None;
    if flags & FLAG_PRIORITY != 0 {
        let (fields, tail) = rest.split_first_chunk::<PRIORITY_BYTES>()?;
        priority = Some(*fields);
        rest = tail;
    }
    Some((priority, rest.get(..rest.len().checked_sub(padding)?)?))
}

impl<S: AsyncRead + Unpin> AuthoritySanitizer<S> {
    /// Reads up to [`READ_CHUNK_BYTES`] into `input`; returns the count (0 at end of stream).
    fn fill_input(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let old = self.input.len();
        self.input.resize(old + READ_CHUNK_BYTES, 0);
        let mut buf = ReadBuf::new(self.input.get_mut(old..).unwrap_or_default());
        let result = Pin::new(&mut self.inner).poll_read(cx, &mut buf);
        let n = buf.filled().len();
        self.input.truncate(old + n);
        result.map_ok(|()| n)
    }
}

/// Reads at most `limit` bytes from `inner` straight into `buf`; returns the count.
fn read_direct<S: AsyncRead + Unpin>(
    inner: &mut S,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
    limit: usize,
) -> Poll<io::Result<usize>> {
    let mut limited = ReadBuf::new(buf.initialize_unfilled_to(limit.min(buf.remaining())));
    ready!(Pin::new(inner).poll_read(cx, &mut limited))?;
    let n = limited.filled().len();
    buf.advance(n);
    Poll::Ready(Ok(n))
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthoritySanitizer<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if !this.output.is_empty() {
                let n = buf.remaining().min(this.output.len());
                buf.put_slice(&this.output.split_to(n));
                return Poll::Ready(Ok(()));
            }
            this.process();
            if !this.output.is_empty() {
                continue;
            }
            // `process` left `input` empty in these three states.
            match this.state {
                State::Passthrough => return Pin::new(&mut this.inner).poll_read(cx, buf),
                State::Preface { matched } => {
                    let start = buf.filled().len();
                    let n = ready!(read_direct(&mut this.inner, cx, buf, PREFACE.len() - matched))?;
                    let seen = buf.filled().get(start..).unwrap_or_default();
                    this.state = match PREFACE.get(matched..matched + n) {
                        Some(expected) if expected == seen && matched + n == PREFACE.len() => {
                            State::FrameHeader
                        }
                        Some(expected) if expected == seen => State::Preface { matched: matched + n },
                        _ => State::Passthrough,
                    };
                    return Poll::Ready(Ok(()));
                }
                State::Payload { remaining } => {
                    let n = ready!(read_direct(&mut this.inner, cx, buf, remaining))?;
                    if n > 0 {
                        this.state = payload_state(remaining - n);
                    }
                    return Poll::Ready(Ok(()));
                }
                State::FrameHeader | State::HeaderFrame(_) => {
                    if ready!(this.fill_input(cx))? == 0 {
                        // End of stream inside a frame: hand over what is buffered, unchanged.
                        this.give_up();
                        if this.output.is_empty() {
                            return Poll::Ready(Ok(()));
                        }
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthoritySanitizer<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Rewrites invalid `:authority` values in an HPACK header block (RFC 7541 §6).
/// `None`: malformed block; `Some(None)`: nothing to rewrite.
fn rewrite_block(block: &[u8]) -> Option<Option<Vec<u8>>> {
    let mut out: Option<Vec<u8>> = None;
    let (mut pos, mut copied) = (0, 0);
    while let Some(&first) = block.get(pos) {
        let name_index = match first {
            0x80..=0xff => {
                read_int(block, &mut pos, 7)?; // indexed field
                continue;
            }
            0x40..=0x7f => read_int(block, &mut pos, 6)?, // literal with incremental indexing
            0x20..=0x3f => {
                read_int(block, &mut pos, 5)?; // dynamic table size update
                continue;
            }
            _ => read_int(block, &mut pos, 4)?, // literal without indexing / never indexed
        };
        let is_authority = match name_index {
            0 => read_string(block, &mut pos)?.is(AUTHORITY),
            index => index == 1,
        };
        let value_start = pos;
        let value = read_string(block, &mut pos)?;
        if !is_authority {
            continue;
        }
        let Some(original) = value.decoded() else { continue };
        let Some(sanitized) = sanitize_authority(&original) else {
            continue;
        };
        tracing::debug!(
            original = %String::from_utf8_lossy(&original),
            sanitized = %String::from_utf8_lossy(&sanitized),
            "rewrote invalid HTTP/2 :authority"
        );
        let out = out.get_or_insert_with(|| Vec::with_capacity(block.len() + sanitized.len()));
        out.extend_from_slice(block.get(copied..value_start)?);
        put_plain_string(out, &sanitized);
        copied = pos;
    }
    Some(out.map(|mut out| {
        out.extend_from_slice(block.get(copied..).unwrap_or_default());
        out
    }))
}

/// Reads an HPACK integer with an N-bit prefix (RFC 7541 §5.1).
fn read_int(block: &[u8], pos: &mut usize, prefix_bits: u32) -> Option<usize> {
    let mask = (1u8 << prefix_bits) - 1;
    let mut value = u64::from(block.get(*pos)? & mask);
    *pos += 1;
    if value < u64::from(mask) {
        return usize::try_from(value).ok();
    }
    for shift in (0..=28).step_by(7) {
        let byte = *block.get(*pos)?;
        *pos += 1;
        value += u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return usize::try_from(value).ok();
        }
    }
    None
}

/// Appends a non-Huffman string literal (H = 0, 7-bit prefix length).
fn put_plain_string(out: &mut Vec<u8>, s: &[u8]) {
    let mut len = s.len();
    if len < 0x7f {
        out.push(len as u8);
    } else {
        out.push(0x7f);
        len -= 0x7f;
        while len >= 0x80 {
            out.push((len & 0x7f) as u8 | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
    }
    out.extend_from_slice(s);
}

struct HpackString<'a> {
    huffman: bool,
    data: &'a [u8],
}

impl<'a> HpackString<'a> {
    /// The octets, or `None` if the Huffman coding is invalid.
    fn decoded(&self) -> Option<Cow<'a, [u8]>> {
        if self.huffman {
            huffman_decode(self.data).map(Cow::Owned)
        } else {
            Some(Cow::Borrowed(self.data))
        }
    }

    /// Whether the octets equal `expected` (Huffman never makes a string longer).
    fn is(&self, expected: &[u8]) -> bool {
        self.data.len() <= expected.len() && self.decoded().is_some_and(|s| *s == *expected)
    }
}

fn read_string<'a>(block: &'a [u8], pos: &mut usize) -> Option<HpackString<'a>> {
    let huffman = block.get(*pos)? & 0x80 != 0;
    let len = read_int(block, pos, 7)?;
    let end = pos.checked_add(len)?;
    let data = block.get(*pos..end)?;
    *pos = end;
    Some(HpackString { huffman, data })
}

/// `None` if `value` is empty or already valid, else a same-length value `Authority` accepts:
/// bytes outside RFC 3986 reg-name become `-`, except a final `:port` (1–5 digits).
fn sanitize_authority(value: &[u8]) -> Option<Vec<u8>> {
    if value.is_empty() || Authority::try_from(value).is_ok() {
        return None;
    }
    let port_colon = value.iter().rposition(|&b| b == b':').filter(|&i| {
        let port = value.get(i + 1..).unwrap_or_default();
        (1..=5).contains(&port.len()) && port.iter().all(u8::is_ascii_digit)
    });
    let is_reg_name = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b);
    let mut sanitized: Vec<u8> = (value.iter().enumerate())
        .map(|(i, &b)| {
            if Some(i) == port_colon || is_reg_name(b) {
                b
            } else {
                b'-'
            }
        })
        .collect();
    if Authority::try_from(sanitized.as_slice()).is_err() {
        sanitized.fill(b'-');
    }
    Some(sanitized)
}

/// RFC 7541 Appendix B: Huffman code length in bits of each octet.
#[rustfmt::skip]
const HUFFMAN_CODE_BITS: [u8; 256] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28,
    28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6,
    6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8,
    7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7,
    7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23,
    24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22,
    23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25,
    26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24,
    20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27,
    27, 27, 27, 26,
];

const EOS: u16 = 256;
const MAX_CODE_BITS: usize = 30;

/// The code is canonical: codes of one length are consecutive, in symbol order, so a code of
/// `bits` bits decodes to `symbols[offset[bits] + code - first_code[bits]]` if in range.
struct Canonical {
    first_code: [u32; MAX_CODE_BITS + 1],
    count: [u32; MAX_CODE_BITS + 1],
    offset: [usize; MAX_CODE_BITS + 1],
    symbols: [u16; 257],
}

const CANONICAL: Canonical = {
    let mut c = Canonical {
        first_code: [0; MAX_CODE_BITS + 1],
        count: [0; MAX_CODE_BITS + 1],
        offset: [0; MAX_CODE_BITS + 1],
        symbols: [0; 257],
    };
    let (mut bits, mut code, mut next) = (1, 0u32, 0);
    while bits <= MAX_CODE_BITS {
        c.first_code[bits] = code;
        c.offset[bits] = next;
        let mut symbol = 0;
        while symbol <= EOS as usize {
            let len = if symbol < 256 {
                HUFFMAN_CODE_BITS[symbol] as usize
            } else {
                MAX_CODE_BITS
            };
            if len == bits {
                c.symbols[next] = symbol as u16;
                next += 1;
                c.count[bits] += 1;
            }
            symbol += 1;
        }
        code = (code + c.count[bits]) << 1;
        bits += 1;
    }
    c
};

/// Decodes a Huffman-coded string (RFC 7541 §5.2); `None` if the coding is invalid.
fn huffman_decode(src: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(src.len() * 8 / 5 + 1);
    let (mut code, mut bits) = (0u32, 0usize);
    for &byte in src {
        for shift in (0..8).rev() {
            code = code << 1 | u32::from(byte >> shift & 1);
            bits += 1;
            let index = code.wrapping_sub(*CANONICAL.first_code.get(bits)?);
            if index < *CANONICAL.count.get(bits)? {
                let symbol = *CANONICAL
                    .symbols
                    .get(CANONICAL.offset.get(bits)? + index as usize)?;
                out.push(u8::try_from(symbol).ok()?); // EOS inside a string is an error
                (code, bits) = (0, 0);
            } else if bits >= MAX_CODE_BITS {
                return None;
            }
        }
    }
    // Padding: fewer than 8 bits, all ones (a prefix of EOS).
    (bits < 8 && code == (1 << bits) - 1).then_some(out)
}

#[cfg(test)]
#[path = "h2_authority_test.rs"]
mod tests;
