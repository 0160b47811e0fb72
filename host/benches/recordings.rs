//! Conversion speed (× real time) of the recordings converter next to the `lame` CLI at the
//! same settings (CBR 32 kbit/s, quality 5), and the time from "recording available" to the
//! `recording` event for a 5-minute call.
//!
//! Both sides use LAME 3.100 at the same settings (`mp3lame-encoder` builds it from source; the
//! CLI is Debian's `lame`), on the same 16-bit PCM WAV files on disk, writing the MP3 to disk.
//! Each figure is the median of 3 runs of one file, wall clock; ours includes reading the WAV,
//! the temporary MP3, the LAME tag, `fsync` and the rename, the CLI's its process start.
//!
//! Run: `cargo bench -p callhook --bench recordings`. Figures go to `docs/benchmarks.md`. Needs
//! the `lame` command (Debian package `lame`) for the comparison column; without it that column
//! says n/a and a message says why.

use std::io::Cursor;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use callhook::calls::event::CallId;
use callhook::calls::{CallPart, FinishedCall};
use callhook::pbx::xapi::CallType;
use callhook::recordings::convert::convert_blocking;
use callhook::recordings::{
    AudioStream, BoxFuture, Outcome, Recorder, RecordingPage, RecordingSource, RecordingsConfig,
    SourceError, WavInput, XapiRecording,
};
use jiff::Timestamp;

const BITRATE: u32 = 32;
const RUNS: usize = 3;

/// A speech-like test signal: a few tones with a slow amplitude envelope, plus a little noise.
fn wav(channels: u16, rate: u32, secs: u32) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut out, spec).unwrap();
    let mut noise = 0x1234_5678u32;
    for n in 0..(rate * secs) {
        let t = f64::from(n) / f64::from(rate);
        let envelope = 0.5 + 0.5 * (t * 3.0).sin();
        for ch in 0..channels {
            noise ^= noise << 13;
            noise ^= noise >> 17;
            noise ^= noise << 5;
            let base = 180.0 + 40.0 * f64::from(ch);
            let v = envelope
                * (0.25 * (t * base * std::f64::consts::TAU).sin()
                    + 0.1 * (t * base * 3.1 * std::f64::consts::TAU).sin())
                + (f64::from(noise % 1000) / 1000.0 - 0.5) * 0.02;
            writer
                .write_sample((v * f64::from(i16::MAX)) as i16)
                .unwrap();
        }
    }
    writer.finalize().unwrap();
    out.into_inner()
}

/// The median of `RUNS` timings of `f`.
fn median(mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[RUNS / 2]
}

/// The median time of the `lame` CLI converting `input` (after one warm-up run), or `None`
/// if it fails.
fn lame_cli(input: &Path, output: &Path, channels: u16) -> Option<Duration> {
    let mode = if channels == 1 { "m" } else { "j" };
    let mut command = Command::new("lame");
    command
        .args([
            "--quiet",
            "--cbr",
            "-b",
            &BITRATE.to_string(),
            "-q",
            "5",
            "-m",
            mode,
        ])
        .arg(input)
        .arg(output);
    command.output().ok().filter(|o| o.status.success())?;
    Some(median(|| {
        let status = command.output().expect("lame runs").status;
        assert!(status.success());
    }))
}

/// A recording source with one recording, listed at once, whose WAV is in memory.
struct Ready {
    recording: XapiRecording,
    wav: Bytes,
}

impl RecordingSource for Ready {
    fn recordings_after(
        &self,
        after: u64,
        _: u32,
    ) -> BoxFuture<'_, Result<RecordingPage, SourceError>> {
        let rows = if after < self.recording.id {
            vec![self.recording.clone()]
        } else {
            vec![]
        };
        Box::pin(async move {
            Ok(RecordingPage {
                rows,
                skipped: vec![],
            })
        })
    }
    fn newest_recordings(&self, _: u32) -> BoxFuture<'_, Result<RecordingPage, SourceError>> {
        Box::pin(async {
            Ok(RecordingPage {
                rows: vec![],
                skipped: vec![],
            })
        })
    }
    fn download_recording(&self, _: u64) -> BoxFuture<'_, Result<AudioStream, SourceError>> {
        let wav = self.wav.clone();
        Box::pin(async move { Ok(Box::pin(futures_util::stream::iter([Ok(wav)])) as AudioStream) })
    }
}

/// From the moment a 5-minute recording is available in XAPI to the `recording` event.
fn available_to_event(dir: &Path) -> Duration {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let start = Timestamp::from_second(1_800_000_000).unwrap();
    let end = Timestamp::from_second(1_800_000_300).unwrap();
    let source = Arc::new(Ready {
        recording: XapiRecording {
            id: 1,
            recording_url: "120/[A]_0301234567-120_x(1).wav".to_owned(),
            start_time: Some(start),
            end_time: Some(end),
            from_dn: "10000".to_owned(),
            to_dn: "120".to_owned(),
            from_caller_number: "0301234567".to_owned(),
            to_caller_number: "120".to_owned(),
            from_dn_type: "Wexternalline".to_owned(),
            to_dn_type: "Wextension".to_owned(),
            call_type: CallType::InboundExternal,
        },
        wav: Bytes::from(wav(1, 8000, 300)),
    });
    let call = FinishedCall {
        pbx_call_id: 1,
        parts: vec![CallPart {
            id: CallId {
                stamp: "270115080000".to_owned(),
                pbx_call_id: 1,
                link: 1,
            },
            extension: "120".to_owned(),
            other_number: "0301234567".to_owned(),
            talk_start: start,
            talk_end: end,
        }],
        last_end: None,
    };
    median(|| {
        let config = RecordingsConfig {
            enabled: true,
            mp3_dir: dir.join("mp3"),
            public_url: "https://pbx".to_owned(),
            ..RecordingsConfig::default()
        };
        let recorder = Recorder::new(&config, Some(source.clone())).unwrap();
        let outcome = runtime.block_on(recorder.handle(&call));
        assert!(matches!(outcome, Outcome::Ready { .. }));
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo test --benches asks for a list; there is nothing to list.
    }
    let lame_version = Command::new("lame")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        });
    match &lame_version {
        Some(version) => println!("lame CLI: {version}\n"),
        None => println!(
            "the `lame` command is missing (Debian: `apt-get install -y lame`): \
             its column is skipped\n"
        ),
    }
    let dir = tempfile::tempdir().unwrap();
    println!("| input | audio | callhook | × real time | lame CLI | × real time |");
    println!("|---|---|---|---|---|---|");
    for (channels, rate, secs) in [
        (1, 8000, 60),
        (1, 8000, 600),
        (2, 16000, 60),
        (2, 16000, 600),
    ] {
        let input = dir.path().join(format!("{rate}-{channels}-{secs}.wav"));
        std::fs::write(&input, wav(channels, rate, secs)).unwrap();
        let ours = dir.path().join("ours.mp3");
        let source = WavInput::File(input.clone());
        let took = median(|| {
            convert_blocking(&source, &ours, BITRATE).unwrap();
        });
        let audio = f64::from(secs);
        let lame = lame_version
            .as_ref()
            .and_then(|_| lame_cli(&input, &dir.path().join("lame.mp3"), channels));
        let (lame_time, lame_speed) = match lame {
            Some(t) => (
                format!("{:.3} s", t.as_secs_f64()),
                format!("{:.0}×", audio / t.as_secs_f64()),
            ),
            None => ("n/a".to_owned(), "n/a".to_owned()),
        };
        let layout = if channels == 1 { "mono" } else { "stereo" };
        println!(
            "| {} kHz {layout} 16-bit | {} min | {:.3} s | {:.0}× | {lame_time} | {lame_speed} |",
            rate / 1000,
            secs / 60,
            took.as_secs_f64(),
            audio / took.as_secs_f64(),
        );
    }
    let latency = available_to_event(dir.path());
    println!(
        "\n5-minute call (8 kHz mono), recording available in XAPI → `recording` event: {:.3} s",
        latency.as_secs_f64()
    );
}
