//! The only protocol on the pipes between the supervisor and its workers: length-prefixed binary
//! frames. Supervisor → worker (stdin): the spec, then the skip set, then (with
//! `--auth-command`) credentials, again whenever they are refreshed; worker → supervisor
//! (stdout): records and stats, and a note when credentials went stale.
//!
//! ```text
//! frame  = len:u32le  tag:u8  payload[len]
//! tag 1  = record: index:u64 status:u16 attempts:u16 error:u8 latency_us:u32 bytes:u64
//!                  [n:u16 (value)[n] value value    captured headers, the body (or its path),
//!                   m:u16 (value)[m]                the key (ids from a file), extracted fields,
//!                   k:u16 (value)[k] value          the key files' columns, the next page's link
//!                   page:u32 more:u8]               (`--next`), the page, 1 if more follow
//!                  value = 0:u8 (absent) | 1:u8 len:u32 bytes[len]
//! tag 2  = stats:  rows ok_2xx other_status errors bytes (u64 each)
//!                  n:u8 errors_by_kind[n]:u64  throttled_us:u64 in_flight:u64 concurrency_limit:u64
//!                  wire_bytes:u64 unknown_coding:u64 extract_misses:u64 redirect_limit:u64
//!                  tls_resumed:u64 tls_full:u64
//!                  n:u16 (len:u16 tls_reason[len] count:u64)[n]
//!                  n:u16 (len:u16 proxy[len] connections rows failures bench_ms (u64 each))[n]
//!                  paced_by_quota_us:u64 hosts_touched:u64
//!                  n:u16 (len:u16 host[len] requests errors throttled paced_us latency_us_sum
//!                         answered (u64 each))[n]
//!                  latency histogram (HdrHistogram V2 encoding)
//!                  [driver:u8  1 io_uring, 2 epoll (RINGSCRAPE_DRIVER), 3 epoll (io_uring refused:
//!                   then len:u16 error[len])]    absent: not said (a worker of before issue 40)
//! tag 3  = spec:   the worker's assignment (TOML text, see `assignment::WorkerSpec`)
//! tag 4  = skip:   the ids to skip when resuming (an `IdSet`'s bytes)
//! tag 5  = credentials: generation:u64 then `Name: value` lines (`--auth-command`'s headers;
//!                  after the assignment, and again at each refresh)
//! tag 6  = stale:  generation:u64 (a worker got a 401 with these credentials)
//! ```
//! All integers little-endian. `status` 0 means no response, `error` 0 means none. A decoder
//! ignores bytes after the fields it knows, so later versions can append optional fields
//! (captured headers, a body) to a record without a new protocol; an unknown tag is skipped.

use std::io::{self, BufRead, BufReader, Read};

use crate::model::{Captured, ErrorKind, Record};
use crate::runtime::DriverChoice;
use crate::stats::WorkerStats;

const TAG_RECORD: u8 = 1;
const TAG_STATS: u8 = 2;
const TAG_SPEC: u8 = 3;
const TAG_SKIP: u8 = 4;
const TAG_CREDENTIALS: u8 = 5;
const TAG_STALE: u8 = 6;
const HEADER_LEN: usize = 5;
const RECORD_FIXED_LEN: usize = 8 + 2 + 2 + 1 + 4 + 8;
/// By default a frame larger than this is corruption, not data: refuse it rather than allocate
/// it. A run that keeps bodies raises the limit to fit its largest body.
pub const MAX_FRAME_LEN: usize = 16 << 20;

/// One decoded frame.
#[derive(Debug)]
pub enum Frame {
    Record(Record),
    Stats(Box<WorkerStats>),
    /// A worker's assignment, still encoded (the worker parses it).
    Spec(Vec<u8>),
    /// The ids a resumed worker skips, as an `IdSet`'s bytes.
    Skip(Vec<u8>),
    /// Headers to send with every request from now on, and their generation (1, 2, …).
    Credentials {
        generation: u64,
        lines: String,
    },
    /// A worker got a 401 with credentials of this generation.
    Stale(u64),
    /// A tag this version does not know; skipped so newer workers don't break older readers.
    Unknown(u8),
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("pipe ended in the middle of a frame ({got} of {want} bytes)")]
    Torn { got: usize, want: usize },
    #[error("frame of {0} bytes is larger than any valid frame")]
    Oversized(usize),
    #[error("malformed {0} frame")]
    Malformed(&'static str),
    #[error("reading the pipe: {0}")]
    Io(#[from] io::Error),
}

fn begin_frame(out: &mut Vec<u8>, tag: u8) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, tag]);
    at
}

fn end_frame(out: &mut [u8], at: usize) {
    let len = (out.len() - at - HEADER_LEN) as u32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

/// Appends one record frame to `out`.
pub fn encode_record(record: &Record, out: &mut Vec<u8>) {
    let at = begin_frame(out, TAG_RECORD);
    out.extend_from_slice(&record.index.to_le_bytes());
    out.extend_from_slice(&record.status.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&record.attempts.to_le_bytes());
    out.push(record.error.map_or(0, |kind| kind as u8));
    out.extend_from_slice(&record.latency_us.to_le_bytes());
    out.extend_from_slice(&record.bytes.to_le_bytes());
    let captured = &record.captured;
    if *captured != Captured::default() || record.page != 0 || record.more {
        out.extend_from_slice(&(captured.headers.len() as u16).to_le_bytes());
        for value in &captured.headers {
            encode_value(value.as_deref(), out);
        }
        encode_value(captured.body.as_deref(), out);
        encode_value(captured.key.as_deref(), out);
        out.extend_from_slice(&(captured.extracted.len() as u16).to_le_bytes());
        for value in &captured.extracted {
            encode_value(value.as_deref(), out);
        }
        out.extend_from_slice(&(captured.keys.len() as u16).to_le_bytes());
        for value in &captured.keys {
            encode_value(value.as_deref(), out);
        }
        encode_value(captured.next.as_deref(), out);
        out.extend_from_slice(&record.page.to_le_bytes());
        out.push(u8::from(record.more));
    }
    end_frame(out, at);
}

fn encode_value(value: Option<&[u8]>, out: &mut Vec<u8>) {
    match value {
        None => out.push(0),
        Some(bytes) => {
            out.push(1);
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(bytes);
        }
    }
}

/// Appends one stats frame (a cumulative snapshot of a worker's counters) to `out`.
pub fn encode_stats(stats: &WorkerStats, out: &mut Vec<u8>) {
    let at = begin_frame(out, TAG_STATS);
    for value in [
        stats.rows,
        stats.ok_2xx,
        stats.other_status,
        stats.errors,
        stats.bytes,
    ] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    out.push(stats.errors_by_kind.len() as u8);
    for value in stats.errors_by_kind {
        out.extend_from_slice(&value.to_le_bytes());
    }
    out.extend_from_slice(&stats.throttled_us.to_le_bytes());
    out.extend_from_slice(&stats.in_flight.to_le_bytes());
    out.extend_from_slice(&stats.concurrency_limit.to_le_bytes());
    let answers = &stats.answers;
    for value in [
        answers.wire_bytes,
        answers.unknown_coding,
        answers.extract_misses,
        answers.redirect_limit,
        answers.tls_resumed,
        answers.tls_full,
        answers.signs.refused,
        answers.signs.https_port,
        answers.signs.not_h2,
    ] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    out.extend_from_slice(&(answers.tls_reasons.len() as u16).to_le_bytes());
    for (reason, n) in &answers.tls_reasons {
        let reason = &reason.as_bytes()[..reason.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(reason.len() as u16).to_le_bytes());
        out.extend_from_slice(reason);
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.extend_from_slice(&(answers.proxies.len() as u16).to_le_bytes());
    for (proxy, t) in &answers.proxies {
        let proxy = &proxy.as_bytes()[..proxy.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(proxy.len() as u16).to_le_bytes());
        out.extend_from_slice(proxy);
        for value in [t.connections, t.rows, t.failures, t.bench_ms] {
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
    encode_hosts(stats, out);
    stats.encode_latency(out);
    if let Some(driver) = &stats.driver {
        encode_driver(driver, out);
    }
    end_frame(out, at);
}

const DRIVER_IO_URING: u8 = 1;
const DRIVER_EPOLL_FORCED: u8 = 2;
const DRIVER_EPOLL_FALLBACK: u8 = 3;

/// The stats' last, optional part: the worker's event loop.
fn encode_driver(driver: &DriverChoice, out: &mut Vec<u8>) {
    match driver {
        DriverChoice::IoUring => out.push(DRIVER_IO_URING),
        DriverChoice::EpollForced => out.push(DRIVER_EPOLL_FORCED),
        DriverChoice::EpollFallback(error) => {
            out.push(DRIVER_EPOLL_FALLBACK);
            let error = &error.as_bytes()[..error.len().min(u16::MAX as usize)];
            out.extend_from_slice(&(error.len() as u16).to_le_bytes());
            out.extend_from_slice(error);
        }
    }
}

/// The stats' per-host part: quota pacing, hosts touched, the top hosts' figures.
fn encode_hosts(stats: &WorkerStats, out: &mut Vec<u8>) {
    out.extend_from_slice(&stats.paced_by_quota_us.to_le_bytes());
    out.extend_from_slice(&stats.hosts.touched.to_le_bytes());
    let top = &stats.hosts.top[..stats.hosts.top.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(top.len() as u16).to_le_bytes());
    for h in top {
        let host = &h.host.as_bytes()[..h.host.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(host.len() as u16).to_le_bytes());
        out.extend_from_slice(host);
        for value in [
            h.requests,
            h.errors,
            h.throttled,
            h.paced_us,
            h.latency_us_sum,
            h.answered,
        ] {
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
}

/// Appends a spec frame carrying `spec` to `out`.
pub fn encode_spec(spec: &[u8], out: &mut Vec<u8>) {
    encode_opaque(TAG_SPEC, spec, out);
}

/// Appends a skip-set frame carrying `skip` to `out`.
pub fn encode_skip(skip: &[u8], out: &mut Vec<u8>) {
    encode_opaque(TAG_SKIP, skip, out);
}

/// Appends a credentials frame: `lines` (`Name: value`, one per line) of `generation`.
pub fn encode_credentials(generation: u64, lines: &str, out: &mut Vec<u8>) {
    let at = begin_frame(out, TAG_CREDENTIALS);
    out.extend_from_slice(&generation.to_le_bytes());
    out.extend_from_slice(lines.as_bytes());
    end_frame(out, at);
}

/// Appends a note that credentials of `generation` were answered 401.
pub fn encode_stale(generation: u64, out: &mut Vec<u8>) {
    let at = begin_frame(out, TAG_STALE);
    out.extend_from_slice(&generation.to_le_bytes());
    end_frame(out, at);
}

fn encode_opaque(tag: u8, payload: &[u8], out: &mut Vec<u8>) {
    let at = begin_frame(out, tag);
    out.extend_from_slice(payload);
    end_frame(out, at);
}

/// A little-endian cursor over a frame payload.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
    fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn value(&mut self) -> Option<Option<Vec<u8>>> {
        match self.u8()? {
            0 => Some(None),
            1 => {
                let len = self.u32()? as usize;
                Some(Some(self.bytes(len)?.to_vec()))
            }
            _ => None,
        }
    }
    /// The stats' optional driver: `None` when absent (an older worker) or of a code this
    /// version does not know (a newer one); the outer `None` when torn.
    fn driver(&mut self) -> Option<Option<DriverChoice>> {
        if self.0.is_empty() {
            return Some(None);
        }
        Some(match self.u8()? {
            DRIVER_IO_URING => Some(DriverChoice::IoUring),
            DRIVER_EPOLL_FORCED => Some(DriverChoice::EpollForced),
            DRIVER_EPOLL_FALLBACK => {
                let len = usize::from(self.u16()?);
                let error = String::from_utf8_lossy(self.bytes(len)?).into_owned();
                Some(DriverChoice::EpollFallback(error))
            }
            _ => None,
        })
    }
    /// The optional tail: captured values, then the page and whether more follow.
    fn captured(&mut self) -> Option<(Captured, u32, bool)> {
        if self.0.is_empty() {
            return Some((Captured::default(), 0, false));
        }
        let n = usize::from(self.u16()?);
        let headers = (0..n).map(|_| self.value()).collect::<Option<Vec<_>>>()?;
        let body = self.value()?;
        let key = self.value()?;
        let n = usize::from(self.u16()?);
        let extracted = (0..n).map(|_| self.value()).collect::<Option<Vec<_>>>()?;
        let n = usize::from(self.u16()?);
        let keys = (0..n).map(|_| self.value()).collect::<Option<Vec<_>>>()?;
        let next = self.value()?;
        let page = self.u32()?;
        let more = self.u8()? != 0;
        let captured = Captured {
            headers,
            body,
            key,
            extracted,
            keys,
            next,
        };
        Some((captured, page, more))
    }
}

fn decode_record(payload: &[u8]) -> Result<Record, WireError> {
    let malformed = WireError::Malformed("record");
    if payload.len() < RECORD_FIXED_LEN {
        return Err(malformed);
    }
    let mut f = Fields(payload);
    let mut parse = || -> Option<Record> {
        let index = f.u64()?;
        let status = f.u16()?;
        let attempts = f.u16()?;
        let error = f.u8()?;
        let latency_us = f.u32()?;
        let bytes = f.u64()?;
        let (captured, page, more) = f.captured()?;
        Some(Record {
            index,
            page,
            more,
            status: (status != 0).then_some(status),
            bytes,
            latency_us,
            attempts,
            error: if error == 0 {
                None
            } else {
                Some(ErrorKind::from_code(error)?)
            },
            captured,
        })
    };
    parse().ok_or(malformed)
}

fn decode_stats(payload: &[u8]) -> Result<WorkerStats, WireError> {
    let mut f = Fields(payload);
    let mut parse = || -> Option<WorkerStats> {
        let mut stats = WorkerStats::new();
        stats.rows = f.u64()?;
        stats.ok_2xx = f.u64()?;
        stats.other_status = f.u64()?;
        stats.errors = f.u64()?;
        stats.bytes = f.u64()?;
        let kinds = usize::from(f.u8()?);
        for slot in 0..kinds {
            let value = f.u64()?;
            if let Some(counter) = stats.errors_by_kind.get_mut(slot) {
                *counter = value;
            }
        }
        stats.throttled_us = f.u64()?;
        stats.in_flight = f.u64()?;
        stats.concurrency_limit = f.u64()?;
        let answers = &mut stats.answers;
        answers.wire_bytes = f.u64()?;
        answers.unknown_coding = f.u64()?;
        answers.extract_misses = f.u64()?;
        answers.redirect_limit = f.u64()?;
        answers.tls_resumed = f.u64()?;
        answers.tls_full = f.u64()?;
        answers.signs.refused = f.u64()?;
        answers.signs.https_port = f.u64()?;
        answers.signs.not_h2 = f.u64()?;
        for _ in 0..f.u16()? {
            let len = usize::from(f.u16()?);
            let reason = String::from_utf8_lossy(f.bytes(len)?).into_owned();
            answers.add_tls_reason(&reason, f.u64()?);
        }
        for _ in 0..f.u16()? {
            let len = usize::from(f.u16()?);
            let proxy = String::from_utf8_lossy(f.bytes(len)?).into_owned();
            let tally = crate::stats::ProxyTally {
                connections: f.u64()?,
                rows: f.u64()?,
                failures: f.u64()?,
                bench_ms: f.u64()?,
            };
            answers.proxies.insert(proxy, tally);
        }
        stats.paced_by_quota_us = f.u64()?;
        stats.hosts.touched = f.u64()?;
        for _ in 0..f.u16()? {
            let len = usize::from(f.u16()?);
            let host = String::from_utf8_lossy(f.bytes(len)?).into_owned();
            stats.hosts.top.push(crate::stats::HostFigures {
                host,
                requests: f.u64()?,
                errors: f.u64()?,
                throttled: f.u64()?,
                paced_us: f.u64()?,
                latency_us_sum: f.u64()?,
                answered: f.u64()?,
            });
        }
        stats.decode_latency(&mut f.0).ok()?;
        stats.driver = f.driver()?;
        Some(stats)
    };
    parse().ok_or(WireError::Malformed("stats"))
}

/// Reads frames one at a time from a pipe (buffered), reusing one payload buffer.
pub struct FrameReader<R> {
    inner: BufReader<R>,
    payload: Vec<u8>,
    max_frame: usize,
}

impl<R: Read> FrameReader<R> {
    pub fn new(inner: R) -> Self {
        Self::with_max_frame(inner, MAX_FRAME_LEN)
    }

    /// A reader that accepts frames of up to `max_frame` payload bytes.
    pub fn with_max_frame(inner: R, max_frame: usize) -> Self {
        Self {
            inner: BufReader::with_capacity(64 << 10, inner),
            payload: Vec::with_capacity(256),
            max_frame,
        }
    }

    /// True when everything read so far has been decoded: the next frame needs a new read.
    pub fn drained(&self) -> bool {
        self.inner.buffer().is_empty()
    }

    /// The next frame; `Ok(None)` at a clean end of stream (between frames).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, WireError> {
        // A frame already whole in the buffer is decoded where it lies: copying each record's
        // 30 bytes out (and zeroing the payload buffer first) was a twentieth of the
        // supervisor's instructions per row.
        let buffered = self.inner.buffer();
        if let Some(header) = buffered.first_chunk::<HEADER_LEN>() {
            let len = frame_len(header);
            if len > self.max_frame {
                return Err(WireError::Oversized(len));
            }
            if let Some(payload) = buffered.get(HEADER_LEN..HEADER_LEN + len) {
                let frame = decode(header[4], payload)?;
                self.inner.consume(HEADER_LEN + len);
                return Ok(Some(frame));
            }
        }
        let mut header = [0u8; HEADER_LEN];
        let got = read_full(&mut self.inner, &mut header)?;
        if got == 0 {
            return Ok(None);
        }
        if got < HEADER_LEN {
            return Err(WireError::Torn {
                got,
                want: HEADER_LEN,
            });
        }
        let len = frame_len(&header);
        if len > self.max_frame {
            return Err(WireError::Oversized(len));
        }
        self.payload.resize(len, 0);
        let got = read_full(&mut self.inner, &mut self.payload)?;
        if got < len {
            return Err(WireError::Torn {
                got: HEADER_LEN + got,
                want: HEADER_LEN + len,
            });
        }
        Ok(Some(match header[4] {
            TAG_SPEC => Frame::Spec(std::mem::take(&mut self.payload)),
            TAG_SKIP => Frame::Skip(std::mem::take(&mut self.payload)),
            tag => decode(tag, &self.payload)?,
        }))
    }
}

/// The payload length a frame header gives.
fn frame_len(header: &[u8; HEADER_LEN]) -> usize {
    u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize
}

/// The frame of `tag` whose payload is `payload`.
fn decode(tag: u8, payload: &[u8]) -> Result<Frame, WireError> {
    Ok(match tag {
        TAG_RECORD => Frame::Record(decode_record(payload)?),
        TAG_STATS => Frame::Stats(Box::new(decode_stats(payload)?)),
        TAG_SPEC => Frame::Spec(payload.to_vec()),
        TAG_SKIP => Frame::Skip(payload.to_vec()),
        TAG_CREDENTIALS => {
            let malformed = WireError::Malformed("credentials");
            let (generation, lines) = payload.split_at_checked(8).ok_or(malformed)?;
            let generation = u64::from_le_bytes(generation.try_into().unwrap_or_default());
            let lines = String::from_utf8(lines.to_vec())
                .map_err(|_| WireError::Malformed("credentials"))?;
            Frame::Credentials { generation, lines }
        }
        TAG_STALE => {
            let generation: [u8; 8] = payload
                .try_into()
                .map_err(|_| WireError::Malformed("stale"))?;
            Frame::Stale(u64::from_le_bytes(generation))
        }
        other => Frame::Unknown(other),
    })
}

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(index: u64) -> Record {
        Record {
            index,
            page: 0,
            more: false,
            status: Some(200),
            bytes: 71,
            latency_us: 1234,
            attempts: 1,
            error: None,
            captured: Default::default(),
        }
    }

    fn failed(index: u64, kind: ErrorKind) -> Record {
        Record {
            index,
            page: 0,
            more: false,
            status: None,
            bytes: 0,
            latency_us: 30_000_000,
            attempts: 3,
            error: Some(kind),
            captured: Default::default(),
        }
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<Frame>, WireError> {
        let mut reader = FrameReader::new(bytes);
        let mut frames = Vec::new();
        while let Some(frame) = reader.next_frame()? {
            frames.push(frame);
        }
        Ok(frames)
    }

    #[test]
    fn records_round_trip_through_frames() {
        let mut captured = sample(5);
        captured.captured = Captured {
            headers: vec![Some(b"etag".to_vec()), None],
            body: Some(b"{\"a\":1}".to_vec()),
            key: Some(b"key 5".to_vec()),
            extracted: vec![None, Some(b"1".to_vec()), Some(Vec::new())],
            keys: vec![Some(b"2026-01-02".to_vec()), None],
            next: Some(b"https://h/list?page=2".to_vec()),
        };
        captured.page = 1;
        captured.more = true;
        let records = [
            sample(0),
            captured,
            failed(u64::MAX, ErrorKind::Timeout),
            failed(9, ErrorKind::BodyTooLarge),
        ];
        let mut buf = Vec::new();
        for record in &records {
            encode_record(record, &mut buf);
        }
        let decoded: Vec<Record> = read_all(&buf)
            .expect("well-formed stream")
            .into_iter()
            .filter_map(|frame| match frame {
                Frame::Record(record) => Some(record),
                _ => None,
            })
            .collect();
        assert_eq!(decoded, records);
    }

    #[test]
    fn stats_round_trip_with_histogram() {
        let mut stats = WorkerStats::new();
        stats.record(&sample(1));
        stats.record(&failed(2, ErrorKind::Reset));
        stats.answers.wire_bytes = 7;
        stats.answers.redirect_limit = 2;
        (stats.answers.tls_resumed, stats.answers.tls_full) = (90, 10);
        stats.answers.signs = crate::stats::Signs {
            refused: 4,
            https_port: 5,
            not_h2: 6,
        };
        stats
            .answers
            .add_tls_reason("invalid peer certificate: UnknownIssuer", 3);
        stats.answers.proxies.insert(
            "socks5://***@127.0.0.1:1080".into(),
            crate::stats::ProxyTally {
                connections: 4,
                rows: 30,
                failures: 2,
                bench_ms: 3000,
            },
        );
        stats.paced_by_quota_us = 1_500_000;
        stats.hosts.touched = 2;
        stats.hosts.top.push(crate::stats::HostFigures {
            host: "a.test:8080".into(),
            requests: 9,
            errors: 1,
            throttled: 2,
            paced_us: 3,
            latency_us_sum: 4,
            answered: 8,
        });
        let mut buf = Vec::new();
        encode_stats(&stats, &mut buf);
        let frames = read_all(&buf).expect("well-formed stream");
        let Some(Frame::Stats(decoded)) = frames.into_iter().next() else {
            panic!("expected a stats frame");
        };
        assert_eq!(decoded.paced_by_quota_us, 1_500_000);
        assert_eq!(decoded.hosts, stats.hosts);
        assert_eq!(decoded.rows, 2);
        assert_eq!(decoded.ok_2xx, 1);
        assert_eq!(decoded.errors, 1);
        assert_eq!(decoded.errors_by_kind[ErrorKind::Reset.slot()], 1);
        assert_eq!(decoded.latency_us.len(), 1);
        assert_eq!(decoded.answers, stats.answers);
        assert_eq!(decoded.driver, None, "a worker that has not said");
    }

    #[test]
    fn stats_carry_the_driver_after_the_histogram() {
        for driver in [
            DriverChoice::IoUring,
            DriverChoice::EpollForced,
            DriverChoice::EpollFallback("Operation not permitted".into()),
        ] {
            let mut stats = WorkerStats::new();
            stats.record(&sample(1));
            stats.driver = Some(driver.clone());
            let mut buf = Vec::new();
            encode_stats(&stats, &mut buf);
            let frames = read_all(&buf).expect("well-formed stream");
            let Some(Frame::Stats(decoded)) = frames.into_iter().next() else {
                panic!("expected a stats frame");
            };
            assert_eq!(decoded.driver, Some(driver));
            assert_eq!(
                decoded.latency_us.len(),
                1,
                "the histogram before it intact"
            );
        }
    }

    #[test]
    fn a_stats_driver_of_a_newer_version_is_ignored_and_a_torn_one_refused() {
        let mut stats = WorkerStats::new();
        stats.rows = 3;
        let frame_with = |tail: &[u8]| {
            let mut buf = Vec::new();
            encode_stats(&stats, &mut buf);
            buf.extend_from_slice(tail);
            let len = (buf.len() - HEADER_LEN) as u32;
            buf[..4].copy_from_slice(&len.to_le_bytes());
            buf
        };
        let frames = read_all(&frame_with(&[9, 1, 2, 3])).expect("an unknown code is no error");
        assert!(matches!(&frames[0], Frame::Stats(s) if s.rows == 3 && s.driver.is_none()));
        let torn = read_all(&frame_with(&[DRIVER_EPOLL_FALLBACK, 10, 0, b'x']));
        assert!(matches!(torn, Err(WireError::Malformed("stats"))));
    }

    #[test]
    fn a_torn_frame_is_an_error_not_a_short_record() {
        let mut buf = Vec::new();
        encode_record(&sample(1), &mut buf);
        encode_record(&sample(2), &mut buf);
        for cut in [
            buf.len() - 1,
            buf.len() - 20,
            HEADER_LEN + RECORD_FIXED_LEN + 2,
        ] {
            let mut reader = FrameReader::new(&buf[..cut]);
            assert!(matches!(reader.next_frame(), Ok(Some(Frame::Record(r))) if r.index == 1));
            assert!(
                matches!(reader.next_frame(), Err(WireError::Torn { .. })),
                "cut at {cut}"
            );
        }
    }

    /// Hands out `.1` bytes per read: frames split anywhere across the reader's buffer.
    struct Dribble<'a>(&'a [u8], usize);

    impl Read for Dribble<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(out.len()).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn frames_decode_alike_whole_in_the_buffer_or_split_across_reads() {
        let mut buf = Vec::new();
        for index in 0..50 {
            encode_record(&sample(index), &mut buf);
            encode_stale(index, &mut buf);
        }
        encode_spec(b"spec", &mut buf);
        let whole = format!("{:?}", read_all(&buf).expect("whole"));
        for step in [1, 7, 29, 64 << 10] {
            let mut reader = FrameReader::new(Dribble(&buf, step));
            let mut frames = Vec::new();
            while let Some(frame) = reader.next_frame().expect("well-formed") {
                frames.push(frame);
            }
            assert_eq!(format!("{frames:?}"), whole, "{step} bytes per read");
        }
        let mut small = FrameReader::with_max_frame(&buf[..], 4);
        assert!(matches!(small.next_frame(), Err(WireError::Oversized(25))));
    }

    #[test]
    fn unknown_tags_and_trailing_fields_are_skipped() {
        let mut buf = Vec::new();
        let at = begin_frame(&mut buf, 99);
        buf.extend_from_slice(b"future");
        end_frame(&mut buf, at);
        let mut captured = sample(5);
        captured.captured = Captured {
            headers: vec![Some(b"v".to_vec()), None],
            body: Some(b"\x00body".to_vec()),
            key: Some(b"a key".to_vec()),
            extracted: vec![Some(b"x".to_vec())],
            keys: Vec::new(),
            next: None,
        };
        let record_at = buf.len();
        encode_record(&captured, &mut buf);
        // A later version appends an optional field after the captured values.
        buf.extend_from_slice(b"xyz");
        end_frame(&mut buf, record_at);
        encode_stale(7, &mut buf);
        let frames = read_all(&buf).expect("well-formed stream");
        assert!(matches!(frames[0], Frame::Unknown(99)));
        assert!(matches!(&frames[1], Frame::Record(r) if *r == captured));
        assert!(matches!(frames[2], Frame::Stale(7)));
    }
}
