//! Reading recording WAVs: the RIFF chunk walk, the formats accepted, and G.711 decoding.
//!
//! [`probe`] walks the RIFF chunks itself rather than asking `hound`, because `hound` refuses
//! G.711 (format tags 6 and 7) before saying anything about the file, and because a clear
//! "corrupt" versus "unsupported" verdict needs the raw `fmt ` fields. PCM samples are then read
//! with `hound`; G.711 bytes are expanded here with the ITU-T G.711 tables (built at compile
//! time from the reference decoder of Sun's `g711.c`).
//!
//! Accepted: format tag 1 (PCM) with 8 or 16 bits, 6 (A-law) and 7 (µ-law) with 8 bits, also
//! wrapped in `WAVE_FORMAT_EXTENSIBLE`; one or two channels; any sample rate above zero (LAME
//! decides later whether it can encode it). Everything else is [`WavProblem::Unsupported`];
//! a file whose structure is broken (no RIFF/WAVE header, chunks cut short, no `fmt ` or `data`
//! chunk, inconsistent block alignment, a `data` chunk announcing more bytes than the file
//! holds) is [`WavProblem::Corrupt`].

use std::io::{self, BufReader, Read, Seek, SeekFrom, Take};
use std::time::Duration;

/// How the samples of a WAV are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// Unsigned 8-bit PCM.
    Pcm8,
    /// Signed 16-bit little-endian PCM.
    Pcm16,
    /// G.711 A-law, 8 bits per sample.
    ALaw,
    /// G.711 µ-law, 8 bits per sample.
    MuLaw,
}

/// What [`probe`] learnt about a WAV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WavFormat {
    /// The sample encoding.
    pub encoding: Encoding,
    /// 1 or 2.
    pub channels: u16,
    /// Frames per second.
    pub sample_rate: u32,
    /// Where the `data` chunk's bytes start.
    pub data_offset: u64,
    /// How many bytes of whole frames the `data` chunk holds.
    pub data_len: u64,
}

impl WavFormat {
    /// Bytes per frame (all channels).
    fn block_align(&self) -> u64 {
        let bytes = match self.encoding {
            Encoding::Pcm16 => 2,
            Encoding::Pcm8 | Encoding::ALaw | Encoding::MuLaw => 1,
        };
        bytes * u64::from(self.channels)
    }

    /// The number of frames.
    pub fn frames(&self) -> u64 {
        self.data_len / self.block_align()
    }

    /// How long the audio lasts.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.frames() as f64 / f64::from(self.sample_rate))
    }
}

/// Why a WAV cannot be read.
#[derive(Debug)]
pub(crate) enum WavProblem {
    /// Reading failed.
    Io(io::Error),
    /// The file is not a well-formed WAV.
    Corrupt(String),
    /// A well-formed WAV in a format the converter does not take.
    Unsupported(String),
}

impl From<io::Error> for WavProblem {
    fn from(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            WavProblem::Corrupt("the file ends in the middle of a chunk header".to_owned())
        } else {
            WavProblem::Io(error)
        }
    }
}

const WAVE_FORMAT_PCM: u16 = 1;
const WAVE_FORMAT_IEEE_FLOAT: u16 = 3;
const WAVE_FORMAT_ALAW: u16 = 6;
const WAVE_FORMAT_MULAW: u16 = 7;
const WAVE_FORMAT_EXTENSIBLE: u16 = 0xFFFE;

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Reads the RIFF header and chunk list of a WAV of `file_len` bytes, up to its `data` chunk.
pub(crate) fn probe<R: Read + Seek>(
    reader: &mut R,
    file_len: u64,
) -> Result<WavFormat, WavProblem> {
    let corrupt = |why: String| Err(WavProblem::Corrupt(why));
    let mut header = [0u8; 12];
    reader.seek(SeekFrom::Start(0))?;
    if file_len < 12 {
        return corrupt(format!(
            "only {file_len} bytes, too short for a RIFF header"
        ));
    }
    reader.read_exact(&mut header)?;
    if &header[0..4] != b"RIFF" || &header[8..12] != b"WAVE" {
        return corrupt("no RIFF/WAVE header".to_owned());
    }
    let mut at = 12u64;
    let mut format: Option<(Encoding, u16, u32)> = None;
    loop {
        if at + 8 > file_len {
            let missing = if format.is_some() { "data" } else { "fmt " };
            return corrupt(format!("no `{missing}` chunk before the end of the file"));
        }
        let mut chunk = [0u8; 8];
        reader.seek(SeekFrom::Start(at))?;
        reader.read_exact(&mut chunk)?;
        let size = u64::from(u32_at(&chunk, 4));
        let body = at + 8;
        let available = file_len - body;
        match &chunk[0..4] {
            b"fmt " => {
                if size < 16 || size > available {
                    return corrupt(format!(
                        "the `fmt ` chunk announces {size} bytes but {} are there",
                        available.min(size)
                    ));
                }
                let mut fmt = vec![0u8; size.min(40) as usize];
                reader.read_exact(&mut fmt)?;
                format = Some(parse_fmt(&fmt)?);
            }
            b"data" => {
                let Some((encoding, channels, sample_rate)) = format else {
                    return corrupt("the `data` chunk comes before the `fmt ` chunk".to_owned());
                };
                if size > available {
                    return corrupt(format!(
                        "the `data` chunk announces {size} bytes but only {available} follow \
                         (the file is cut short)"
                    ));
                }
                let mut wav = WavFormat {
                    encoding,
                    channels,
                    sample_rate,
                    data_offset: body,
                    data_len: size,
                };
                // A trailing partial frame is dropped rather than refused.
                wav.data_len -= size % wav.block_align();
                return Ok(wav);
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        at = body + size + (size & 1);
    }
}

/// Parses a `fmt ` chunk body (16 to 40 bytes) into encoding, channels and sample rate.
fn parse_fmt(fmt: &[u8]) -> Result<(Encoding, u16, u32), WavProblem> {
    let mut tag = u16_at(fmt, 0);
    let channels = u16_at(fmt, 2);
    let sample_rate = u32_at(fmt, 4);
    let block_align = u16_at(fmt, 12);
    let bits = u16_at(fmt, 14);
    if tag == WAVE_FORMAT_EXTENSIBLE {
        if fmt.len() < 40 {
            return Err(WavProblem::Corrupt(
                "a WAVE_FORMAT_EXTENSIBLE `fmt ` chunk shorter than 40 bytes".to_owned(),
            ));
        }
        // The sub-format GUID starts with the plain format tag.
        tag = u16_at(fmt, 24);
    }
    let unsupported = |what: String| Err(WavProblem::Unsupported(what));
    let encoding = match (tag, bits) {
        (WAVE_FORMAT_PCM, 16) => Encoding::Pcm16,
        (WAVE_FORMAT_PCM, 8) => Encoding::Pcm8,
        (WAVE_FORMAT_ALAW, 8) => Encoding::ALaw,
        (WAVE_FORMAT_MULAW, 8) => Encoding::MuLaw,
        (WAVE_FORMAT_PCM, bits) => return unsupported(format!("{bits}-bit PCM")),
        (WAVE_FORMAT_ALAW | WAVE_FORMAT_MULAW, bits) => {
            return unsupported(format!("G.711 with {bits} bits per sample"));
        }
        (WAVE_FORMAT_IEEE_FLOAT, bits) => return unsupported(format!("{bits}-bit float")),
        (tag, _) => return unsupported(format!("format tag {tag:#06x}")),
    };
    if channels == 0 {
        return Err(WavProblem::Corrupt("zero channels".to_owned()));
    }
    if channels > 2 {
        return unsupported(format!("{channels} channels"));
    }
    if sample_rate == 0 {
        return Err(WavProblem::Corrupt("a sample rate of 0 Hz".to_owned()));
    }
    let expected_align = channels * bits.div_ceil(8);
    if block_align != expected_align {
        return Err(WavProblem::Corrupt(format!(
            "block alignment {block_align} does not fit {channels} channel(s) of {bits} bits"
        )));
    }
    Ok((encoding, channels, sample_rate))
}

/// Reads the samples of a probed WAV as interleaved 16-bit PCM, block by block.
pub(crate) enum Samples<R: Read + Seek> {
    /// PCM, through `hound`; 8-bit samples are scaled up by 256.
    Pcm {
        samples: hound::WavIntoSamples<BufReader<R>, i16>,
        scale: i16,
        left: u64,
    },
    /// G.711 bytes expanded through a table.
    G711 {
        bytes: Take<BufReader<R>>,
        table: &'static [i16; 256],
        buffer: Vec<u8>,
    },
}

impl<R: Read + Seek> Samples<R> {
    /// Opens the samples of `wav`, read from `reader`.
    pub fn open(mut reader: R, wav: &WavFormat) -> Result<Self, WavProblem> {
        let samples = wav.data_len / wav.block_align() * u64::from(wav.channels);
        match wav.encoding {
            Encoding::Pcm8 | Encoding::Pcm16 => {
                reader.seek(SeekFrom::Start(0))?;
                let reader = hound::WavReader::new(BufReader::new(reader))
                    .map_err(|e| WavProblem::Corrupt(e.to_string()))?;
                Ok(Samples::Pcm {
                    samples: reader.into_samples(),
                    scale: if wav.encoding == Encoding::Pcm8 {
                        256
                    } else {
                        1
                    },
                    left: samples,
                })
            }
            Encoding::ALaw | Encoding::MuLaw => {
                reader.seek(SeekFrom::Start(wav.data_offset))?;
                let table = if wav.encoding == Encoding::ALaw {
                    &ALAW
                } else {
                    &MULAW
                };
                Ok(Samples::G711 {
                    bytes: BufReader::new(reader).take(wav.data_len),
                    table,
                    buffer: Vec::new(),
                })
            }
        }
    }

    /// Replaces the contents of `out` with up to `max` samples; empty at the end.
    pub fn fill(&mut self, out: &mut Vec<i16>, max: usize) -> Result<(), WavProblem> {
        out.clear();
        match self {
            Samples::Pcm {
                samples,
                scale,
                left,
            } => {
                let n = (*left).min(max as u64) as usize;
                for sample in samples.by_ref().take(n) {
                    let sample = sample.map_err(|e| {
                        WavProblem::Corrupt(format!("the audio data cannot be read: {e}"))
                    })?;
                    out.push(sample.saturating_mul(*scale));
                }
                if out.len() < n {
                    return Err(WavProblem::Corrupt("the audio data ends early".to_owned()));
                }
                *left -= n as u64;
            }
            Samples::G711 {
                bytes,
                table,
                buffer,
            } => {
                buffer.resize(max, 0);
                let mut got = 0;
                while got < max {
                    match bytes.read(&mut buffer[got..])? {
                        0 => break,
                        n => got += n,
                    }
                }
                out.extend(buffer[..got].iter().map(|&b| table[usize::from(b)]));
            }
        }
        Ok(())
    }
}

/// One A-law code to linear 16-bit PCM (ITU-T G.711, as Sun's `alaw2linear`).
const fn alaw_to_linear(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mantissa = ((a & 0x0f) as i32) << 4;
    let segment = ((a & 0x70) >> 4) as i32;
    let magnitude = match segment {
        0 => mantissa + 8,
        1 => mantissa + 0x108,
        _ => (mantissa + 0x108) << (segment - 1),
    };
    (if a & 0x80 != 0 { magnitude } else { -magnitude }) as i16
}

/// One µ-law code to linear 16-bit PCM (ITU-T G.711, as Sun's `ulaw2linear`).
const fn mulaw_to_linear(code: u8) -> i16 {
    let u = !code;
    let magnitude = ((((u & 0x0f) as i32) << 3) + 0x84) << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 {
        0x84 - magnitude
    } else {
        magnitude - 0x84
    }) as i16
}

/// The decoding table of one law (`mu` picks µ-law, else A-law).
const fn table(mu: bool) -> [i16; 256] {
    let mut out = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        out[code] = if mu {
            mulaw_to_linear(code as u8)
        } else {
            alaw_to_linear(code as u8)
        };
        code += 1;
    }
    out
}

/// A-law code to linear PCM.
pub(crate) static ALAW: [i16; 256] = table(false);
/// µ-law code to linear PCM.
pub(crate) static MULAW: [i16; 256] = table(true);

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn g711_tables_match_the_reference_decoder() {
        for (table, code, linear) in [
            (&ALAW, 0xD5, 8),
            (&ALAW, 0x55, -8),
            (&ALAW, 0xAA, 32256),
            (&ALAW, 0x2A, -32256),
            (&MULAW, 0xFF, 0),
            (&MULAW, 0x7F, 0),
            (&MULAW, 0x80, 32124),
            (&MULAW, 0x00, -32124),
        ] {
            assert_eq!(table[code], linear, "code {code:#04x}");
        }
    }

    /// A RIFF file with a `fmt ` chunk of the given fields and `data` bytes.
    fn wav(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
        let align = channels * bits.div_ceil(8);
        let mut out = b"RIFF\0\0\0\0WAVE".to_vec();
        out.extend_from_slice(b"LIST\x03\0\0\0abc\0"); // an odd-sized chunk, padded
        out.extend_from_slice(b"fmt \x10\0\0\0");
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
        out.extend_from_slice(&align.to_le_bytes());
        out.extend_from_slice(&bits.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    fn probed(bytes: &[u8]) -> Result<WavFormat, WavProblem> {
        probe(&mut Cursor::new(bytes), bytes.len() as u64)
    }

    #[test]
    fn probes_accepted_formats() {
        for (tag, channels, bits, encoding) in [
            (1, 1, 16, Encoding::Pcm16),
            (1, 2, 8, Encoding::Pcm8),
            (6, 1, 8, Encoding::ALaw),
            (7, 2, 8, Encoding::MuLaw),
        ] {
            let bytes = wav(tag, channels, 8000, bits, &[0; 33]);
            let format = probed(&bytes).unwrap();
            assert_eq!((format.encoding, format.channels), (encoding, channels));
            assert_eq!(format.frames(), 33 / u64::from(channels * bits / 8));
        }
    }

    #[test]
    fn rejects_unsupported_and_corrupt_files() {
        let cases: [(Vec<u8>, &str); 8] = [
            (wav(1, 1, 8000, 24, &[0; 6]), "unsupported: 24-bit PCM"),
            (wav(3, 1, 8000, 32, &[0; 8]), "unsupported: 32-bit float"),
            (
                wav(2, 1, 8000, 4, &[0; 8]),
                "unsupported: format tag 0x0002",
            ),
            (wav(1, 3, 8000, 16, &[0; 12]), "unsupported: 3 channels"),
            (wav(1, 1, 0, 16, &[0; 8]), "corrupt: a sample rate of 0 Hz"),
            (b"RIFX\0\0\0\0WAVE".to_vec(), "corrupt: no RIFF/WAVE header"),
            (
                b"RIFF\x24\0\0\0WAVEfmt \x10\0\0\0\x07\0\x01".to_vec(),
                "corrupt: the `fmt ` chunk announces 16 bytes but 3 are there",
            ),
            (
                wav(1, 1, 8000, 16, &[0; 8])[..58].to_vec(),
                "corrupt: the `data` chunk announces 8 bytes but only 2 follow",
            ),
        ];
        for (bytes, expected) in cases {
            let got = match probed(&bytes) {
                Err(WavProblem::Unsupported(why)) => format!("unsupported: {why}"),
                Err(WavProblem::Corrupt(why)) => format!("corrupt: {why}"),
                other => format!("{other:?}"),
            };
            assert!(got.starts_with(expected), "{got} (expected {expected})");
        }
    }

    #[test]
    fn reads_g711_samples() {
        let bytes = wav(7, 1, 8000, 8, &[0xFF, 0x80, 0x00]);
        let format = probed(&bytes).unwrap();
        let mut samples = Samples::open(Cursor::new(bytes), &format).unwrap();
        let mut out = Vec::new();
        samples.fill(&mut out, 2).unwrap();
        assert_eq!(out, [0, 32124]);
        samples.fill(&mut out, 2).unwrap();
        assert_eq!(out, [-32124]);
        samples.fill(&mut out, 2).unwrap();
        assert!(out.is_empty());
    }
}
