//! Content codings undone as the body arrives: `gzip`, `deflate`, `br` and `zstd`, stacked
//! ones included (`Content-Encoding: gzip, br` is decoded br first, then gzip).
//!
//! Push-based: the HTTP/1.1 decoder and the HTTP/2 reader hand each piece of body to
//! [`BodyDecoder::feed`] as it comes off the connection, and the decoded bytes land in one
//! buffer that counts them against `--max-body` as they are produced. So a small answer that
//! inflates without end (a gzip bomb) fails at the limit, after at most one decoder buffer past
//! it, and the compressed body is never held whole.

use std::io::{self, Write};
use std::rc::Rc;

use brotli_decompressor::DecompressorWriter;
use flate2::write::{DeflateDecoder, GzDecoder, ZlibDecoder};

/// Output buffer of the brotli decoder (the others bring their own of 32–128 KiB).
const BROTLI_BUFFER: usize = 16 << 10;
/// Largest zstd window decoded, as a power of two: 8 MiB, what RFC 9659 asks HTTP decoders to
/// support at least and encoders to stay within. A frame asking for more is `decode`; at 2^27
/// (128 MiB, what `zstd --long` writes) 256 answers in flight took 1.7 GB here.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;
/// A zstd or brotli decoder's own buffers and tables besides its window (zstd's context and
/// block buffers, brotli's tables): a rounded-up allowance.
const DECODER_STATE: usize = 256 << 10;

/// One content coding this client can undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    /// `deflate` is zlib-wrapped by the RFC, raw deflate by some servers: told apart by the
    /// first two bytes, as curl and browsers do.
    Deflate,
    Brotli,
    Zstd,
}

/// What a `Content-Encoding` header asks of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Codings {
    /// Nothing (absent, or only `identity`).
    Identity,
    /// Decode these, in the order they were applied (the header's order).
    Known(Vec<Coding>),
    /// A coding this client does not know: the body is kept as it came.
    Unknown,
}

impl Codings {
    /// Parses the values of every `Content-Encoding` header line, in order.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Codings {
        let mut codings = Vec::new();
        for token in values
            .into_iter()
            .flat_map(|value| value.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|token| !token.is_empty())
        {
            let is = |name: &str| token.eq_ignore_ascii_case(name.as_bytes());
            let coding = if is("gzip") || is("x-gzip") {
                Coding::Gzip
            } else if is("deflate") {
                Coding::Deflate
            } else if is("br") {
                Coding::Brotli
            } else if is("zstd") {
                Coding::Zstd
            } else if is("identity") {
                continue;
            } else {
                return Codings::Unknown;
            };
            codings.push(coding);
        }
        if codings.is_empty() {
            Codings::Identity
        } else {
            Codings::Known(codings)
        }
    }
}

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The decoded body passed the limit.
    #[error("decoded body larger than {0} bytes")]
    TooLarge(u64),
    /// The stream is not valid for its coding, or ends before its end.
    #[error("{coding} body could not be decoded: {error}")]
    Corrupt { coding: &'static str, error: String },
    /// The decoded bytes could not be written to the body's file.
    #[error("writing the body file: {0}")]
    Spill(io::Error),
}

/// Where decoded bytes end up: counted against the limit, then kept if asked, or written
/// straight to the body's file (`--bodies-dir`). The file is written to as the decoder
/// produces, because one read of a compressed body can decode to megabytes (a deflate stream
/// to 1,032 times its size, zstd and brotli to far more): buffered, 16 slots of 8 MB gzip
/// bodies took 90 MB where plain ones took 21.
#[derive(Debug, Default)]
pub struct Decoded {
    pub body: Vec<u8>,
    pub len: u64,
    keep: bool,
    max: u64,
    over: bool,
    spill: Option<Rc<std::fs::File>>,
    spill_failed: Option<io::Error>,
}

impl Write for Decoded {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.len += bytes.len() as u64;
        if self.len > self.max {
            self.over = true;
            return Err(io::Error::other("over the body limit"));
        }
        if let Some(file) = &self.spill {
            if let Err(error) = file.as_ref().write_all(bytes) {
                let error = self.spill_failed.insert(error);
                return Err(io::Error::new(error.kind(), "writing the body file"));
            }
        } else if self.keep {
            self.body.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One stage of the chain: a decoder writing into the next, or the [`Decoded`] buffer last.
trait Stage: Write {
    /// Checks the stream ended where its coding says it ends, and passes everything on.
    fn finish(&mut self) -> io::Result<()>;
    /// The buffer at the end of the chain.
    fn decoded(&mut self) -> &mut Decoded;
}

type Next = Box<dyn Stage>;

impl Stage for Decoded {
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn decoded(&mut self) -> &mut Decoded {
        self
    }
}

impl Stage for GzDecoder<Next> {
    fn finish(&mut self) -> io::Result<()> {
        self.try_finish()?;
        self.get_mut().finish()
    }
    fn decoded(&mut self) -> &mut Decoded {
        self.get_mut().decoded()
    }
}

impl Stage for DecompressorWriter<Next> {
    fn finish(&mut self) -> io::Result<()> {
        self.close()?;
        self.get_mut().finish()
    }
    fn decoded(&mut self) -> &mut Decoded {
        self.get_mut().decoded()
    }
}

impl Stage for zstd::stream::write::Decoder<'static, Next> {
    fn finish(&mut self) -> io::Result<()> {
        self.do_finish()?;
        self.get_mut().finish()
    }
    fn decoded(&mut self) -> &mut Decoded {
        self.get_mut().decoded()
    }
}

/// `deflate` in either framing, chosen once the first two bytes are in.
enum Deflate {
    /// Fewer than two bytes seen so far.
    Sniffing {
        first: Vec<u8>,
        next: Option<Next>,
    },
    Zlib(ZlibDecoder<Next>),
    Raw(DeflateDecoder<Next>),
}

impl Deflate {
    /// A zlib header: compression method 8 and a check sum over both bytes (RFC 1950 §2.2).
    fn is_zlib(b0: u8, b1: u8) -> bool {
        b0 & 0x0f == 8 && (u16::from(b0) << 8 | u16::from(b1)) % 31 == 0
    }
}

impl Write for Deflate {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Deflate::Zlib(z) => z.write(bytes),
            Deflate::Raw(r) => r.write(bytes),
            Deflate::Sniffing { first, next } => {
                first.extend_from_slice(bytes);
                if first.len() < 2 {
                    return Ok(bytes.len());
                }
                let seen = std::mem::take(first);
                let next = next
                    .take()
                    .expect("a sniffing decoder holds its next stage");
                *self = if Deflate::is_zlib(seen[0], seen[1]) {
                    Deflate::Zlib(ZlibDecoder::new(next))
                } else {
                    Deflate::Raw(DeflateDecoder::new(next))
                };
                self.write_all(&seen)?;
                Ok(bytes.len())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Deflate::Zlib(z) => z.flush(),
            Deflate::Raw(r) => r.flush(),
            Deflate::Sniffing { .. } => Ok(()),
        }
    }
}

impl Stage for Deflate {
    fn finish(&mut self) -> io::Result<()> {
        match self {
            Deflate::Zlib(z) => {
                z.try_finish()?;
                z.get_mut().finish()
            }
            Deflate::Raw(r) => {
                r.try_finish()?;
                r.get_mut().finish()
            }
            Deflate::Sniffing { .. } => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "stream ended in its header",
            )),
        }
    }
    fn decoded(&mut self) -> &mut Decoded {
        match self {
            Deflate::Zlib(z) => z.get_mut().decoded(),
            Deflate::Raw(r) => r.get_mut().decoded(),
            Deflate::Sniffing { next, .. } => next
                .as_mut()
                .expect("a sniffing decoder holds its next stage")
                .decoded(),
        }
    }
}

/// Decodes one body, as it arrives, into a buffer bounded by the body limit.
pub struct BodyDecoder {
    top: Next,
    /// Encoded bytes fed so far: none at all is an empty body, not a cut stream.
    fed: u64,
    /// What the decoders will hold (their windows), once sized from the body's first bytes.
    window: Option<usize>,
    /// The memory budget has room for the window (see [`BodyDecoder::grant`]).
    granted: bool,
    /// The codings in the order applied (the last is undone first).
    codings: Vec<Coding>,
    /// The outermost coding (the one undone first), for messages.
    outer: Coding,
    max: u64,
}

impl std::fmt::Debug for BodyDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BodyDecoder({})", self.outer.name())
    }
}

impl BodyDecoder {
    /// A decoder for `codings` (in the order applied; at least one), keeping the decoded bytes
    /// in `reuse` (cleared first) when `keep`, failing past `max` decoded bytes.
    pub fn new(codings: &[Coding], keep: bool, max: u64, reuse: Vec<u8>) -> BodyDecoder {
        let mut body = reuse;
        body.clear();
        let decoded = Decoded {
            body,
            keep,
            max,
            ..Decoded::default()
        };
        BodyDecoder::ending_in(codings, decoded, max)
    }

    /// A decoder for `codings` that writes the decoded bytes to `file` as they are produced,
    /// keeping none, failing past `max` decoded bytes.
    pub fn into_file(codings: &[Coding], file: Rc<std::fs::File>, max: u64) -> BodyDecoder {
        let decoded = Decoded {
            max,
            spill: Some(file),
            ..Decoded::default()
        };
        BodyDecoder::ending_in(codings, decoded, max)
    }

    fn ending_in(codings: &[Coding], decoded: Decoded, max: u64) -> BodyDecoder {
        let mut top: Next = Box::new(decoded);
        for coding in codings {
            top = match coding {
                Coding::Gzip => Box::new(GzDecoder::new(top)),
                Coding::Deflate => Box::new(Deflate::Sniffing {
                    first: Vec::new(),
                    next: Some(top),
                }),
                Coding::Brotli => Box::new(DecompressorWriter::new(top, BROTLI_BUFFER)),
                Coding::Zstd => {
                    let mut decoder = zstd::stream::write::Decoder::new(top)
                        .expect("a zstd decoding context can be created");
                    decoder
                        .window_log_max(ZSTD_WINDOW_LOG_MAX)
                        .expect("the window limit is a valid zstd parameter");
                    Box::new(decoder)
                }
            };
        }
        BodyDecoder {
            top,
            fed: 0,
            window: None,
            granted: false,
            codings: codings.to_vec(),
            outer: *codings.last().expect("at least one coding"),
            max,
        }
    }

    /// Decodes the next piece of the encoded body.
    pub fn feed(&mut self, encoded: &[u8]) -> Result<(), DecodeError> {
        if self.window.is_none() && !encoded.is_empty() {
            self.size_window(encoded);
        }
        self.fed += encoded.len() as u64;
        let result = self.top.write_all(encoded);
        self.check(result)
    }

    /// The encoded body has ended: checks that its streams ended too. An empty body is empty
    /// whatever its coding (as curl and browsers read it: `Content-Encoding: gzip` over
    /// `0\r\n\r\n` is no gzip stream at all).
    pub fn finish(&mut self) -> Result<(), DecodeError> {
        if self.fed == 0 {
            return Ok(());
        }
        let result = self.top.finish();
        self.check(result)
    }

    /// Sizes what the decoders will hold from `first`, the first bytes of the encoded body:
    /// the outer coding's window as its stream header declares it, the inner ones' largest.
    pub fn size_window(&mut self, first: &[u8]) {
        let (outer, inner) = self.codings.split_last().expect("at least one coding");
        let outer = declared_window(*outer, first).unwrap_or_else(|| largest_window(*outer));
        let inner: usize = inner.iter().map(|c| largest_window(*c)).sum();
        self.window = Some(outer + inner);
    }

    /// Bytes the decoders hold or will hold besides the decoded body (0 until sized).
    pub fn window(&self) -> usize {
        self.window.unwrap_or(0)
    }

    /// True until the memory budget had room for the window (the decoders take it with their
    /// first bytes, so over HTTP/1.1 a slot waits before it feeds them).
    pub fn awaits_room(&self) -> bool {
        !self.granted
    }

    /// True once the window is sized and waits for room.
    pub fn window_to_grant(&self) -> bool {
        self.window.is_some() && !self.granted
    }

    /// The memory budget has room for the window.
    pub fn grant(&mut self) {
        self.granted = true;
    }

    /// Decoded bytes so far.
    pub fn len(&mut self) -> u64 {
        self.top.decoded().len
    }

    /// The decoded bytes kept so far (a spool writes them out and clears them).
    pub fn body_mut(&mut self) -> &mut Vec<u8> {
        &mut self.top.decoded().body
    }

    /// Hands out the decoded body (and the buffer with it).
    pub fn take_body(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.top.decoded().body)
    }

    fn check(&mut self, result: io::Result<()>) -> Result<(), DecodeError> {
        match result {
            Ok(()) => Ok(()),
            Err(_) if self.top.decoded().over => Err(DecodeError::TooLarge(self.max)),
            Err(error) if self.top.decoded().spill_failed.is_some() => Err(DecodeError::Spill(
                self.top.decoded().spill_failed.take().unwrap_or(error),
            )),
            Err(error) => Err(DecodeError::Corrupt {
                coding: self.outer.name(),
                error: error.to_string(),
            }),
        }
    }
}

/// The most a decoder of `coding` holds besides the decoded body, whatever the stream says.
fn largest_window(coding: Coding) -> usize {
    match coding {
        // Inflate's 32 KiB window and tables, and flate2's 32 KiB buffer, rounded up: counted
        // for every gzip answer, so not the larger allowance of the other two.
        Coding::Gzip | Coding::Deflate => 96 << 10,
        // RFC 7932's largest window (24 bits; the large-window extension is refused).
        Coding::Brotli => DECODER_STATE + (16 << 20),
        Coding::Zstd => DECODER_STATE + (1 << ZSTD_WINDOW_LOG_MAX),
    }
}

/// What a decoder of `coding` will hold for a stream that begins with `first`, as the stream's
/// header declares it: a zstd frame's window (or, for a single-segment frame, its size), a
/// brotli stream's window bits (RFC 7932 §9.1). `None` when `first` does not tell (too short,
/// a skippable zstd frame, deflate, which has no header that says).
fn declared_window(coding: Coding, first: &[u8]) -> Option<usize> {
    let window = match coding {
        Coding::Zstd => zstd_window(first)?,
        Coding::Brotli => 1 << brotli_window_bits(*first.first()?)?,
        Coding::Gzip | Coding::Deflate => return None,
    };
    // A window past the largest is refused at once by the decoder: it takes nothing.
    Some(DECODER_STATE + window.min(largest_window(coding) - DECODER_STATE))
}

/// A zstd frame header's window size (RFC 8878 §3.1.1.1).
fn zstd_window(first: &[u8]) -> Option<usize> {
    if first.get(..4)? != [0x28, 0xb5, 0x2f, 0xfd] {
        return None;
    }
    let descriptor = *first.get(4)?;
    if descriptor & 0x20 == 0 {
        let byte = *first.get(5)?;
        let log = 10 + u32::from(byte >> 3);
        let base = 1usize.checked_shl(log)?;
        return Some(base + base / 8 * usize::from(byte & 7));
    }
    // Single segment: the window is the frame's content size, after the dictionary id.
    let dictionary = [0, 1, 2, 4][usize::from(descriptor & 3)];
    let size_bytes = [1, 2, 4, 8][usize::from(descriptor >> 6)];
    let at = 5 + dictionary;
    let field = first.get(at..at + size_bytes)?;
    let mut size = field
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    if size_bytes == 2 {
        size += 256;
    }
    Some(usize::try_from(size).unwrap_or(usize::MAX))
}

/// A brotli stream's window bits from its first byte (RFC 7932 §9.1); the large-window
/// extension (which the decoder refuses) counts as the standard largest.
fn brotli_window_bits(byte: u8) -> Option<u32> {
    if byte & 1 == 0 {
        return Some(16);
    }
    match (byte >> 1) & 7 {
        0 => match (byte >> 4) & 7 {
            0 => Some(17),
            1 => Some(24),
            m => Some(8 + u32::from(m)),
        },
        n => Some(17 + u32::from(n)),
    }
}

impl Coding {
    pub fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).expect("gzip");
        e.finish().expect("gzip")
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).expect("zlib");
        e.finish().expect("zlib")
    }

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).expect("deflate");
        e.finish().expect("deflate")
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        zstd::encode_all(data, 3).expect("zstd")
    }

    /// Feeds `encoded` in pieces of `piece` bytes; the decoded body or the error.
    fn decode(codings: &[Coding], encoded: &[u8], piece: usize) -> Result<Vec<u8>, DecodeError> {
        let mut decoder = BodyDecoder::new(codings, true, 1 << 20, Vec::new());
        for part in encoded.chunks(piece.max(1)) {
            decoder.feed(part)?;
        }
        decoder.finish()?;
        let body = decoder.take_body();
        assert_eq!(decoder.len(), body.len() as u64);
        Ok(body)
    }

    fn sample() -> Vec<u8> {
        (0..5000u32)
            .flat_map(|i| format!("{{\"id\":{i},\"name\":\"row {i}\"}}\n").into_bytes())
            .collect()
    }

    #[test]
    fn each_coding_decodes_whole_and_byte_by_byte() {
        let data = sample();
        let cases = [
            (Coding::Gzip, gzip(&data)),
            (Coding::Deflate, zlib(&data)),
            (Coding::Deflate, raw_deflate(&data)),
            (Coding::Zstd, zstd(&data)),
        ];
        for (coding, encoded) in cases {
            for piece in [1, 7, 4096, encoded.len()] {
                let got = decode(&[coding], &encoded, piece).expect("decodes");
                assert!(got == data, "{coding:?} in pieces of {piece}");
            }
        }
    }

    #[test]
    fn stacked_codings_are_undone_last_first() {
        let data = sample();
        let encoded = zstd(&gzip(&data));
        let got = decode(&[Coding::Gzip, Coding::Zstd], &encoded, 1000).expect("decodes");
        assert!(got == data);
        assert!(decode(&[Coding::Zstd, Coding::Gzip], &encoded, 1000).is_err());
    }

    #[test]
    fn a_cut_or_garbled_stream_is_corrupt() {
        let data = sample();
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Zstd] {
            let encoded = match coding {
                Coding::Gzip => gzip(&data),
                Coding::Deflate => zlib(&data),
                _ => zstd(&data),
            };
            let cut = &encoded[..encoded.len() / 2];
            assert!(
                matches!(
                    decode(&[coding], cut, 100),
                    Err(DecodeError::Corrupt { .. })
                ),
                "{coding:?} cut"
            );
        }
        let garbage = b"this is not compressed at all, not even a little".repeat(20);
        for coding in [Coding::Gzip, Coding::Brotli, Coding::Zstd] {
            assert!(
                matches!(
                    decode(&[coding], &garbage, 64),
                    Err(DecodeError::Corrupt { .. })
                ),
                "{coding:?} garbage"
            );
        }
    }

    #[test]
    fn windows_are_read_from_stream_headers_and_zstd_past_8_mib_is_refused() {
        let data = sample();
        let with_window = |log: i32| {
            let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).expect("zstd");
            encoder
                .set_parameter(zstd::stream::raw::CParameter::WindowLog(log as u32))
                .expect("window");
            encoder.include_contentsize(false).expect("no size");
            encoder.write_all(&data).expect("write");
            encoder.finish().expect("finish")
        };
        // A frame with its size in one segment: the window is its size.
        let small = zstd::bulk::compress(&data, 3).expect("zstd");
        assert_eq!(
            declared_window(Coding::Zstd, &small),
            Some(DECODER_STATE + data.len())
        );
        assert_eq!(
            declared_window(Coding::Zstd, &with_window(20)),
            Some(DECODER_STATE + (1 << 20))
        );
        assert_eq!(
            declared_window(Coding::Zstd, &with_window(23)),
            Some(DECODER_STATE + (1 << 23))
        );
        assert_eq!(
            decode(&[Coding::Zstd], &with_window(23), 999).expect("8 MiB"),
            data
        );
        let huge = with_window(27);
        assert!(matches!(
            decode(&[Coding::Zstd], &huge, 999),
            Err(DecodeError::Corrupt { .. })
        ));
        // Brotli: window bits from the first byte (RFC 7932 §9.1): 0x0B is lgwin 22 (brotli's
        // default), 0x0F lgwin 24, an even byte 16, 0x21 10; 0x11 the large-window extension.
        for (byte, bits) in [(0x0b, 22), (0x1b, 22), (0x0f, 24), (0x00, 16), (0x21, 10)] {
            assert_eq!(brotli_window_bits(byte), Some(bits), "{byte:#x}");
        }
        assert_eq!(brotli_window_bits(0x11), Some(24));
        // Too short to tell, or deflate: the largest.
        assert_eq!(declared_window(Coding::Zstd, &small[..3]), None);
        let mut decoder = BodyDecoder::new(&[Coding::Gzip, Coding::Zstd], true, 1 << 20, vec![]);
        decoder.size_window(&small[..3]);
        assert_eq!(
            decoder.window(),
            largest_window(Coding::Zstd) + largest_window(Coding::Gzip)
        );
    }

    #[test]
    fn an_empty_body_is_empty_whatever_its_coding() {
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd] {
            assert_eq!(decode(&[coding], b"", 1).expect("empty"), b"");
            let mut decoder = BodyDecoder::new(&[coding], true, 100, Vec::new());
            decoder.feed(b"").expect("nothing fed");
            decoder.finish().expect("still empty");
        }
        // One byte of a stream that then ends is still cut.
        assert!(decode(&[Coding::Gzip], &gzip(b"x")[..1], 1).is_err());
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 64 << 20];
        let bomb = gzip(&zeros);
        assert!(bomb.len() < 200 << 10, "{}", bomb.len());
        let mut decoder = BodyDecoder::new(&[Coding::Gzip], true, 1 << 20, Vec::new());
        let result = bomb
            .chunks(16 << 10)
            .try_for_each(|part| decoder.feed(part));
        assert!(
            matches!(result, Err(DecodeError::TooLarge(_))),
            "{result:?}"
        );
        let body = decoder.take_body();
        assert!(body.len() <= 1 << 20, "kept {} bytes", body.len());
        assert!(body.capacity() <= 4 << 20, "grew to {}", body.capacity());
    }

    #[test]
    fn a_decoder_into_a_file_writes_as_it_decodes_and_holds_nothing() {
        let data = b"id 7 big body line\n".repeat(400_000);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("body");
        let file = Rc::new(std::fs::File::create(&path).expect("create"));
        let encoded = gzip(&data);
        let mut decoder = BodyDecoder::into_file(&[Coding::Gzip], file, 64 << 20);
        // One piece of a few KiB decodes to megabytes; none of it stays in memory.
        for part in encoded.chunks(4 << 10) {
            decoder.feed(part).expect("decodes");
            assert_eq!(decoder.body_mut().capacity(), 0);
        }
        decoder.finish().expect("ends");
        assert_eq!(decoder.len(), data.len() as u64);
        assert!(std::fs::read(&path).expect("read") == data);
    }

    #[test]
    fn a_decoder_into_a_file_that_cannot_be_written_says_so() {
        let file = Rc::new(std::fs::File::open("/dev/null").expect("open"));
        let mut decoder = BodyDecoder::into_file(&[Coding::Gzip], file, 1 << 20);
        let result = decoder.feed(&gzip(&sample()));
        assert!(matches!(result, Err(DecodeError::Spill(_))), "{result:?}");
    }

    #[test]
    fn codings_parse_in_order_with_identity_skipped() {
        assert_eq!(Codings::parse([]), Codings::Identity);
        assert_eq!(Codings::parse([&b"identity"[..]]), Codings::Identity);
        assert_eq!(
            Codings::parse([&b"GZIP , br"[..], b"zstd"]),
            Codings::Known(vec![Coding::Gzip, Coding::Brotli, Coding::Zstd])
        );
        assert_eq!(Codings::parse([&b"gzip, compress"[..]]), Codings::Unknown);
    }
}
