//! Robustness of the WAV reader ([`probe`], then [`Samples`] as the converter drives them):
//! any bytes, any mutation of a valid WAV, and headers that claim sizes far beyond the file
//! are read or refused, never a panic, and never read into a buffer sized by the header
//! (budget and inputs: `crate::robustness`).
//!
//! There is no counting allocator in the test build, so "no allocation the header merely
//! claims" is checked through the reader: every `read` call's buffer is recorded, and none may
//! be larger than [`MAX_READ`] (a reader that trusted a header would read into a buffer of the
//! claimed size). The code backs this up: [`probe`] allocates at most 40 bytes (the `fmt `
//! body), `Samples` allocates the caller's block size, and `hound` skips chunks through a
//! 1 KiB stack buffer.

use std::cell::Cell;
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::rc::Rc;

use proptest::prelude::*;

use super::{Encoding, Samples, WavFormat, WavProblem, probe};
use crate::recordings::convert::BLOCK_FRAMES;
use crate::robustness::{self, bytes, mutated_from};

/// The largest buffer the reader may be asked to fill: `BufReader`'s 8 KiB, or the converter's
/// block when it reads past the `BufReader`.
const MAX_READ: usize = 8 * 1024;

/// What a [`Watched`] reader saw.
#[derive(Debug, Default)]
struct Seen {
    /// The largest buffer passed to `read`.
    largest_read: Cell<usize>,
    /// Bytes handed out in total.
    total: Cell<u64>,
}

/// A reader that records the buffers it is asked to fill.
struct Watched<R> {
    inner: R,
    seen: Rc<Seen>,
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let seen = &self.seen;
        seen.largest_read
            .set(seen.largest_read.get().max(buf.len()));
        let n = self.inner.read(buf)?;
        seen.total.set(seen.total.get() + n as u64);
        Ok(n)
    }
}

impl<R: Seek> Seek for Watched<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.inner.seek(to)
    }
}

/// Probes `bytes` as a file of `file_len` bytes and reads every sample, in the converter's
/// blocks; checks what must hold of a format and of the samples, and that no read went beyond
/// [`MAX_READ`] or re-read the file over and over.
fn read_all(bytes: &[u8], file_len: u64) -> Result<(WavFormat, u64), WavProblem> {
    let seen = Rc::new(Seen::default());
    let result = read_watched(bytes, file_len, &seen);
    assert!(
        seen.largest_read.get() <= MAX_READ,
        "a read of {} bytes (file of {} bytes claiming {file_len}): {result:?}",
        seen.largest_read.get(),
        bytes.len(),
    );
    // The header is read about once, the samples once (hound reads the header again).
    let budget = 3 * bytes.len() as u64 + 64 * 1024;
    assert!(
        seen.total.get() <= budget,
        "{} bytes read from a file of {}",
        seen.total.get(),
        bytes.len()
    );
    result
}

fn read_watched(
    bytes: &[u8],
    file_len: u64,
    seen: &Rc<Seen>,
) -> Result<(WavFormat, u64), WavProblem> {
    let mut reader = Watched {
        inner: Cursor::new(bytes),
        seen: Rc::clone(seen),
    };
    let format = probe(&mut reader, file_len)?;
    assert!((1..=2).contains(&format.channels), "{format:?}");
    assert!(format.sample_rate > 0, "{format:?}");
    assert!(
        format.data_offset + format.data_len <= file_len,
        "{format:?} in a file of {file_len} bytes"
    );
    assert!(format.duration().as_secs_f64().is_finite());
    let expected = format.frames() * u64::from(format.channels);
    let block = BLOCK_FRAMES * usize::from(format.channels);
    let mut samples = Samples::open(reader, &format)?;
    let mut out = Vec::new();
    let mut total = 0u64;
    loop {
        samples.fill(&mut out, block)?;
        assert!(out.len() <= block);
        if out.is_empty() {
            break;
        }
        total += out.len() as u64;
        assert!(
            total <= expected,
            "{total} samples, {expected} announced: {format:?}"
        );
    }
    Ok((format, total))
}

/// A `fmt ` chunk body of 16 bytes (or 40 for `WAVE_FORMAT_EXTENSIBLE`, with `sub` as the
/// sub-format tag).
fn fmt(tag: u16, channels: u16, rate: u32, bits: u16, sub: Option<u16>) -> Vec<u8> {
    let align = channels.wrapping_mul(bits.div_ceil(8));
    let mut out = Vec::new();
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&rate.wrapping_mul(u32::from(align)).to_le_bytes());
    out.extend_from_slice(&align.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    if let Some(sub) = sub {
        out.extend_from_slice(&22u16.to_le_bytes());
        out.extend_from_slice(&bits.to_le_bytes());
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&sub.to_le_bytes());
        out.extend_from_slice(b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71");
    }
    out
}

/// A RIFF/WAVE file of `chunks` (id, announced size or the body's, body; odd bodies padded).
fn riff(chunks: &[(&[u8; 4], Option<u32>, &[u8])]) -> Vec<u8> {
    let mut out = b"RIFF\0\0\0\0WAVE".to_vec();
    for (id, size, body) in chunks {
        out.extend_from_slice(*id);
        out.extend_from_slice(&size.unwrap_or(body.len() as u32).to_le_bytes());
        out.extend_from_slice(body);
        if body.len() % 2 == 1 {
            out.push(0);
        }
    }
    let riff_len = (out.len() - 8) as u32;
    out[4..8].copy_from_slice(&riff_len.to_le_bytes());
    out
}

/// Valid WAVs of every accepted format, with a few hundred bytes of audio.
fn seeds() -> Vec<Vec<u8>> {
    let audio: Vec<u8> = (0..=255u8).chain(0..=99).collect();
    [
        fmt(1, 1, 8000, 16, None),
        fmt(1, 2, 8000, 8, None),
        fmt(6, 1, 8000, 8, None),
        fmt(7, 2, 16000, 8, None),
        fmt(0xFFFE, 1, 8000, 16, Some(1)),
        fmt(0xFFFE, 1, 8000, 8, Some(7)),
    ]
    .iter()
    .enumerate()
    .map(|(i, fmt)| {
        let list: &[u8] = if i % 2 == 0 { b"INFOab" } else { b"" };
        riff(&[
            (b"LIST", None, list),
            (b"fmt ", None, fmt),
            (b"data", None, &audio),
        ])
    })
    .collect()
}

/// A file length as `stat` might report it: mostly the truth, sometimes far more or less.
fn file_len(actual: usize) -> impl Strategy<Value = u64> {
    let actual = actual as u64;
    prop_oneof![
        4 => Just(actual),
        1 => 0..=actual,
        1 => actual..=actual + (1 << 33),
        1 => any::<u64>(),
    ]
}

proptest! {
    #![proptest_config(robustness::config())]

    #[test]
    fn arbitrary_bytes_are_read_or_refused(bytes in bytes()) {
        let _ = read_all(&bytes, bytes.len() as u64);
    }

    #[test]
    fn mutated_wavs_are_read_or_refused(bytes in mutated_from(seeds())) {
        let _ = read_all(&bytes, bytes.len() as u64);
    }

    #[test]
    fn a_wrong_file_length_is_read_or_refused(
        (bytes, len) in mutated_from(seeds()).prop_flat_map(|bytes| {
            let len = file_len(bytes.len());
            (Just(bytes), len)
        })
    ) {
        let _ = read_all(&bytes, len);
    }
}

#[test]
fn every_seed_is_read_whole() {
    for seed in seeds() {
        let (format, samples) = read_all(&seed, seed.len() as u64).unwrap();
        assert_eq!(
            samples,
            format.frames() * u64::from(format.channels),
            "{format:?}"
        );
        assert_eq!(
            format.data_len,
            356 - 356 % format.block_align(),
            "{format:?}"
        );
    }
}

/// Headers claiming sizes far beyond the file are refused without reading what they claim.
#[test]
fn rejects_headers_that_claim_more_than_the_file_holds() {
    let pcm = fmt(1, 1, 8000, 16, None);
    let audio = [0u8; 64];
    let huge = Some(u32::MAX);
    let mut cut = riff(&[(b"fmt ", None, &pcm), (b"data", None, &audio)]);
    cut.truncate(30);
    #[rustfmt::skip]
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (riff(&[(b"fmt ", None, &pcm), (b"data", huge, &audio)]), "corrupt: the `data` chunk announces 4294967295 bytes but only 64 follow"),
        (riff(&[(b"fmt ", huge, &pcm), (b"data", None, &audio)]), "corrupt: the `fmt ` chunk announces 4294967295 bytes but"),
        (riff(&[(b"LIST", huge, b"ab"), (b"fmt ", None, &pcm), (b"data", None, &audio)]), "corrupt: no `fmt ` chunk before the end of the file"),
        (riff(&[(b"fmt ", None, &pcm), (b"LIST", huge, b"ab"), (b"data", None, &audio)]), "corrupt: no `data` chunk before the end of the file"),
        (riff(&[(b"fmt ", None, &fmt(1, u16::MAX, 8000, 16, None)), (b"data", None, &audio)]), "unsupported: 65535 channels"),
        (riff(&[(b"fmt ", None, &fmt(1, 0, 8000, 16, None)), (b"data", None, &audio)]), "corrupt: zero channels"),
        (riff(&[(b"fmt ", None, &fmt(1, 1, 8000, u16::MAX, None)), (b"data", None, &audio)]), "unsupported: 65535-bit PCM"),
        (riff(&[(b"fmt ", None, &fmt(0xFFFE, 1, 8000, 16, Some(1))[..16]), (b"data", None, &audio)]), "corrupt: a WAVE_FORMAT_EXTENSIBLE `fmt ` chunk shorter than 40 bytes"),
        (riff(&[(b"fmt ", None, &fmt(0xFFFE, u16::MAX, 8000, 16, Some(1))), (b"data", None, &audio)]), "unsupported: 65535 channels"),
        (riff(&[(b"data", huge, &audio)]), "corrupt: the `data` chunk comes before the `fmt ` chunk"),
        (cut, "corrupt: the `fmt ` chunk announces 16 bytes but 10 are there"),
        (riff(&[(b"fmt ", None, &pcm)]), "corrupt: no `data` chunk before the end of the file"),
    ];
    for (bytes, expected) in cases {
        let got = match read_all(&bytes, bytes.len() as u64) {
            Err(WavProblem::Unsupported(why)) => format!("unsupported: {why}"),
            Err(WavProblem::Corrupt(why)) => format!("corrupt: {why}"),
            other => format!("{other:?}"),
        };
        assert!(got.starts_with(expected), "{got} (expected {expected})");
    }
}

/// A file whose length is overstated (a `stat` racing a writer) holding a `data` chunk that
/// claims 4 GiB: the PCM reader stops where the bytes end, G.711 reads what is there.
#[test]
fn a_data_chunk_claiming_4_gib_of_a_short_file_reads_what_is_there() {
    let audio = [0x55u8; 1000];
    for (tag, bits, encoding) in [(1, 16, Encoding::Pcm16), (7, 8, Encoding::MuLaw)] {
        let bytes = riff(&[
            (b"fmt ", None, &fmt(tag, 1, 8000, bits, None)),
            (b"data", Some(u32::MAX - 1), &audio),
        ]);
        let claimed = bytes.len() as u64 + u64::from(u32::MAX);
        match (encoding, read_all(&bytes, claimed)) {
            (Encoding::Pcm16, Err(WavProblem::Corrupt(why))) => {
                assert!(
                    why.contains("ends early") || why.contains("cannot be read"),
                    "{why}"
                );
            }
            (Encoding::MuLaw, Ok((format, samples))) => {
                assert_eq!(format.data_len, u64::from(u32::MAX - 1));
                assert_eq!(samples, 1000);
            }
            (encoding, other) => panic!("{encoding:?}: {other:?}"),
        }
    }
}
