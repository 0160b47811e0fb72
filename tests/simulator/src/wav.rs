//! Generated recording audio: a 440 Hz tone as a RIFF WAV, written with `hound`.
//!
//! The length is the recorded talk time as it passed in (scaled) real time, at least 50 ms so
//! that even a very fast replay yields a non-empty, valid file.

use std::io::Cursor;
use std::time::Duration;

use crate::WavFormat;

const SAMPLE_RATE: u32 = 8000;
const MIN_LENGTH: Duration = Duration::from_millis(50);

/// The WAV bytes of a tone lasting `length` in `format`.
pub(crate) fn tone(format: WavFormat, length: Duration) -> Vec<u8> {
    let (channels, bits) = match format {
        WavFormat::Pcm16Mono => (1, 16),
        WavFormat::Pcm16Stereo => (2, 16),
        WavFormat::Pcm8Mono => (1, 8),
    };
    let spec = hound::WavSpec {
        channels,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    };
    let frames = (length.max(MIN_LENGTH).as_secs_f64() * f64::from(SAMPLE_RATE)) as u32;
    let mut bytes = Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut bytes, spec).expect("a WAV header fits in memory");
    for n in 0..frames {
        let phase = f64::from(n) * 440.0 * std::f64::consts::TAU / f64::from(SAMPLE_RATE);
        let level = phase.sin() * 0.3;
        for _ in 0..channels {
            let written = if bits == 8 {
                writer.write_sample((level * f64::from(i8::MAX)) as i8)
            } else {
                writer.write_sample((level * f64::from(i16::MAX)) as i16)
            };
            written.expect("writing to memory cannot fail");
        }
    }
    writer.finalize().expect("writing to memory cannot fail");
    bytes.into_inner()
}

/// Bytes that start like a WAV but are not one: a RIFF header announcing a format chunk that
/// is cut short. For tests of the host's error handling.
pub(crate) fn corrupt() -> Vec<u8> {
    let mut bytes = b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00".to_vec();
    bytes.extend_from_slice(&[0x07, 0x00, 0x01]);
    bytes
}
