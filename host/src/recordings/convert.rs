//! WAV to MP3 with LAME, on a bounded pool of blocking threads.
//!
//! One conversion streams the WAV in blocks of [`BLOCK_FRAMES`] frames through LAME (CBR at the
//! configured bitrate, quality 5, mono or joint stereo as the input) into a hidden temporary file
//! beside the target, writes LAME's `Info` tag over the placeholder frame at its start (so players
//! and decoders know the exact length and the encoder delay), then renames it into place: a
//! half-written MP3 is never visible under its final name. LAME picks the output sample rate
//! for the bitrate (8 kHz stays 8 kHz at 32 kbit/s) and resamples where it must.
//!
//! LAME is CPU-bound and synchronous, so conversions run under `spawn_blocking`, at most
//! [`Converter::new`]'s `parallel` at a time (by default one per core): a burst of finished calls
//! queues up instead of starving the runtime's blocking pool.

use std::fs::File;
use std::io::{BufWriter, Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mp3lame_encoder::{Bitrate, Builder, FlushGap, InterleavedPcm, Mode, MonoPcm, Quality};
use tokio::sync::Semaphore;

use super::wav::{self, Samples, WavProblem};

/// Frames per block handed to LAME: a quarter second at 8 kHz, little memory at any rate.
pub const BLOCK_FRAMES: usize = 2048;

/// The bitrates the encoder offers, in kbit/s: the one list that `mp3_bitrate` (`MP3_BITRATE`)
/// is validated against and the reference page names. The `mp3lame-encoder` binding has no
/// 56 kbit/s, so neither has callhook.
pub const BITRATES: [u32; LAME_BITRATES.len()] = {
    let mut kbps = [0; LAME_BITRATES.len()];
    let mut i = 0;
    while i < kbps.len() {
        // The enum's discriminants are the rates in kbit/s.
        kbps[i] = LAME_BITRATES[i] as u32;
        i += 1;
    }
    kbps
};

/// Every rate of the binding, ascending.
const LAME_BITRATES: [Bitrate; 16] = {
    use Bitrate::*;
    [
        Kbps8, Kbps16, Kbps24, Kbps32, Kbps40, Kbps48, Kbps64, Kbps80, Kbps96, Kbps112, Kbps128,
        Kbps160, Kbps192, Kbps224, Kbps256, Kbps320,
    ]
};

/// A recording's WAV audio: a file, or bytes downloaded from the PBX.
#[derive(Debug, Clone)]
pub enum WavInput {
    /// A WAV file on disk.
    File(PathBuf),
    /// A WAV file downloaded to disk (a temporary file), named for messages by what it is
    /// (e.g. `XAPI recording 7 (150/[..].wav)`).
    Downloaded {
        /// What the file is, for error messages.
        name: String,
        /// Where it is.
        path: PathBuf,
    },
    /// WAV bytes in memory, with a name for messages (e.g. `XAPI recording 7 (150/[..].wav)`).
    Memory {
        /// What the bytes are, for error messages.
        name: String,
        /// The WAV file's bytes.
        bytes: Bytes,
    },
}

impl WavInput {
    /// How messages name this input.
    pub fn name(&self) -> String {
        match self {
            WavInput::File(path) => path.display().to_string(),
            WavInput::Memory { name, .. } | WavInput::Downloaded { name, .. } => name.clone(),
        }
    }
}

/// A finished conversion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Converted {
    /// How long the audio lasts.
    pub audio: Duration,
    /// The MP3 file's size in bytes.
    pub mp3_bytes: u64,
}

/// A conversion failed. Every variant names the input (or output) and the problem.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The input could not be read.
    #[error("cannot read {input}: {source}")]
    Read {
        /// The input's name.
        input: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The input is not a well-formed WAV file.
    #[error("{input} is not a valid WAV file: {problem}")]
    Corrupt {
        /// The input's name.
        input: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A well-formed WAV file in a format the converter does not take.
    #[error(
        "{input} is a WAV file in an unsupported format: {format} (supported: 8- or 16-bit PCM, \
         G.711 A-law or µ-law, mono or stereo)"
    )]
    Unsupported {
        /// The input's name.
        input: String,
        /// The format found.
        format: String,
    },
    /// LAME refused the parameters or failed while encoding.
    #[error("LAME cannot encode {input}: {detail}")]
    Encoder {
        /// The input's name.
        input: String,
        /// LAME's complaint and the parameters.
        detail: String,
    },
    /// The MP3 could not be written.
    #[error("cannot write {output}: {source}")]
    Write {
        /// The target path.
        output: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The conversion thread panicked or was cancelled.
    #[error("the conversion of {input} stopped unexpectedly: {detail}")]
    Aborted {
        /// The input's name.
        input: String,
        /// What the runtime said.
        detail: String,
    },
}

/// Converts WAVs to MP3s, a bounded number at a time. Cheap to clone; clones share the bound.
#[derive(Debug, Clone)]
pub struct Converter {
    permits: Arc<Semaphore>,
    bitrate_kbps: u32,
}

impl Converter {
    /// A converter encoding at `bitrate_kbps` (one of [`BITRATES`]; others are rounded to the
    /// nearest) running at most `parallel` conversions at once (at least one).
    pub fn new(bitrate_kbps: u32, parallel: usize) -> Self {
        Converter {
            permits: Arc::new(Semaphore::new(parallel.max(1))),
            bitrate_kbps,
        }
    }

    /// One conversion per core, the default parallelism.
    pub fn default_parallelism() -> usize {
        std::thread::available_parallelism().map_or(1, usize::from)
    }

    /// Converts `input` to an MP3 at `output` (replacing any file there), waiting for a free
    /// slot first.
    pub async fn convert(
        &self,
        input: WavInput,
        output: PathBuf,
    ) -> Result<Converted, ConvertError> {
        let name = input.name();
        let permit =
            self.permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| ConvertError::Aborted {
                    input: name.clone(),
                    detail: e.to_string(),
                })?;
        let bitrate = self.bitrate_kbps;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            convert_blocking(&input, &output, bitrate)
        })
        .await
        .map_err(|e| ConvertError::Aborted {
            input: name,
            detail: e.to_string(),
        })?
    }
}

/// Converts `input` to `output` on the calling thread; see the module docs.
pub fn convert_blocking(
    input: &WavInput,
    output: &Path,
    bitrate_kbps: u32,
) -> Result<Converted, ConvertError> {
    match input {
        WavInput::File(path) | WavInput::Downloaded { path, .. } => {
            let read = |source| ConvertError::Read {
                input: input.name(),
                source,
            };
            let file = File::open(path).map_err(read)?;
            let len = file.metadata().map_err(read)?.len();
            encode(file, len, &input.name(), output, bitrate_kbps)
        }
        WavInput::Memory { name, bytes } => {
            let len = bytes.len() as u64;
            encode(Cursor::new(bytes.clone()), len, name, output, bitrate_kbps)
        }
    }
}

fn wav_error(input: &str, problem: WavProblem) -> ConvertError {
    let input = input.to_owned();
    match problem {
        WavProblem::Io(source) => ConvertError::Read { input, source },
        WavProblem::Corrupt(problem) => ConvertError::Corrupt { input, problem },
        WavProblem::Unsupported(format) => ConvertError::Unsupported { input, format },
    }
}

/// The LAME bitrate closest to `kbps`.
fn lame_bitrate(kbps: u32) -> Bitrate {
    let nearest = (0..BITRATES.len())
        .min_by_key(|&i| BITRATES[i].abs_diff(kbps))
        .unwrap_or(3);
    LAME_BITRATES[nearest]
}

fn encode<R: Read + Seek>(
    mut reader: R,
    len: u64,
    input: &str,
    output: &Path,
    bitrate_kbps: u32,
) -> Result<Converted, ConvertError> {
    let format = wav::probe(&mut reader, len).map_err(|p| wav_error(input, p))?;
    let mut samples = Samples::open(reader, &format).map_err(|p| wav_error(input, p))?;
    let encoder_error = |what: &str, detail: &dyn std::fmt::Display| ConvertError::Encoder {
        input: input.to_owned(),
        detail: format!(
            "{what}: {detail} ({} Hz, {} channel(s), {bitrate_kbps} kbit/s)",
            format.sample_rate, format.channels
        ),
    };
    let mode = if format.channels == 1 {
        Mode::Mono
    } else {
        Mode::JointStereo
    };
    let mut builder = Builder::new().ok_or_else(|| encoder_error("setup", &"out of memory"))?;
    let setup = (|| {
        builder.set_num_channels(format.channels as u8)?;
        builder.set_sample_rate(format.sample_rate)?;
        builder.set_brate(lame_bitrate(bitrate_kbps))?;
        builder.set_mode(mode)?;
        builder.set_quality(Quality::Good)?;
        builder.set_to_write_vbr_tag(true)
    })();
    setup.map_err(|e| encoder_error("invalid parameters", &e))?;
    let mut encoder = builder
        .build()
        .map_err(|e| encoder_error("invalid parameters", &e))?;

    let write = |source| ConvertError::Write {
        output: output.to_owned(),
        source,
    };
    let dir = output.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(".")
        .suffix(".mp3.partial")
        .tempfile_in(dir)
        .map_err(write)?;
    let channels = usize::from(format.channels);
    let mut pcm = Vec::with_capacity(BLOCK_FRAMES * channels);
    let mut mp3 = Vec::with_capacity(mp3lame_encoder::max_required_buffer_size(BLOCK_FRAMES));
    {
        let mut out = BufWriter::new(temp.as_file_mut());
        loop {
            samples
                .fill(&mut pcm, BLOCK_FRAMES * channels)
                .map_err(|p| wav_error(input, p))?;
            if pcm.is_empty() {
                break;
            }
            mp3.clear();
            let encoded = if channels == 1 {
                encoder.encode_to_vec(MonoPcm(&pcm), &mut mp3)
            } else {
                encoder.encode_to_vec(InterleavedPcm(&pcm), &mut mp3)
            };
            encoded.map_err(|e| encoder_error("encoding failed", &e))?;
            out.write_all(&mp3).map_err(write)?;
        }
        mp3.clear();
        encoder
            .flush_to_vec::<FlushGap>(&mut mp3)
            .map_err(|e| encoder_error("flushing failed", &e))?;
        out.write_all(&mp3).map_err(write)?;
        // LAME reserved the first frame for the tag; it can be filled in only now.
        let mut tag = Vec::with_capacity(encoder.lame_tag_size());
        if encoder.lame_tag_encode_to_vec(&mut tag).is_some() {
            out.seek(SeekFrom::Start(0)).map_err(write)?;
            out.write_all(&tag).map_err(write)?;
        }
        out.flush().map_err(write)?;
    }
    temp.as_file().sync_data().map_err(write)?;
    let mp3_bytes = temp.as_file().metadata().map_err(write)?.len();
    temp.persist(output).map_err(|e| write(e.error))?;
    Ok(Converted {
        audio: format.duration(),
        mp3_bytes,
    })
}
