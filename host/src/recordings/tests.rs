//! The recordings suite: conversion of every format, serving, the pipeline against a fake XAPI,
//! and end to end against the 3CX simulator over real HTTP (XAPI and folder sources).

use std::io::{Cursor, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use callhook_simulator::{Scenario, SimConfig, SimHandle, Simulator};
use jiff::Timestamp;
use serde_json::Value;

use super::*;
use crate::calls::event::CallId;
use crate::calls::{CallPart, FinishedCall};

// ---------------------------------------------------------------------------------------------
// WAV making and MP3 decoding

/// A sample format to generate.
#[derive(Debug, Clone, Copy)]
enum Gen {
    Pcm16,
    Pcm8,
    ALaw,
    MuLaw,
}

/// A 440 Hz tone (the right channel a fifth higher) of `secs` seconds as WAV bytes.
fn tone(format: Gen, channels: u16, rate: u32, secs: f64) -> Vec<u8> {
    let frames = (secs * f64::from(rate)) as usize;
    let sample = |n: usize, ch: u16| {
        let f = if ch == 0 { 440.0 } else { 660.0 };
        let phase = n as f64 * f * std::f64::consts::TAU / f64::from(rate);
        (phase.sin() * 0.3 * f64::from(i16::MAX)) as i16
    };
    match format {
        Gen::Pcm16 | Gen::Pcm8 => {
            let bits = if matches!(format, Gen::Pcm16) { 16 } else { 8 };
            let spec = hound::WavSpec {
                channels,
                sample_rate: rate,
                bits_per_sample: bits,
                sample_format: hound::SampleFormat::Int,
            };
            let mut out = Cursor::new(Vec::new());
            let mut writer = hound::WavWriter::new(&mut out, spec).unwrap();
            for n in 0..frames {
                for ch in 0..channels {
                    if bits == 16 {
                        writer.write_sample(sample(n, ch)).unwrap();
                    } else {
                        writer.write_sample((sample(n, ch) >> 8) as i8).unwrap();
                    }
                }
            }
            writer.finalize().unwrap();
            out.into_inner()
        }
        Gen::ALaw | Gen::MuLaw => {
            let (tag, table) = match format {
                Gen::ALaw => (6u16, &wav::ALAW),
                _ => (7u16, &wav::MULAW),
            };
            // The encoder is the decoder table searched for the nearest value.
            let encode = |s: i16| {
                (0..=255u8)
                    .min_by_key(|&c| (i32::from(table[usize::from(c)]) - i32::from(s)).abs())
                    .unwrap()
            };
            let data: Vec<u8> = (0..frames)
                .flat_map(|n| (0..channels).map(move |ch| (n, ch)))
                .map(|(n, ch)| encode(sample(n, ch)))
                .collect();
            g711_wav(tag, channels, rate, &data)
        }
    }
}

/// A G.711 WAV with an 18-byte `fmt ` chunk (cbSize 0) and a `fact` chunk, as Windows writes.
fn g711_wav(tag: u16, channels: u16, rate: u32, data: &[u8]) -> Vec<u8> {
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(4 + 26 + 12 + 8 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt \x12\0\0\0");
    for v in [tag, channels] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(channels)).to_le_bytes());
    for v in [channels, 8, 0] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(b"fact\x04\0\0\0");
    out.extend_from_slice(&(data.len() as u32 / u32::from(channels)).to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// Decodes an MP3 with symphonia (gapless: encoder delay and padding trimmed); its duration.
fn mp3_duration(bytes: Vec<u8>) -> Duration {
    use symphonia::core::codecs::DecoderOptions;
    use symphonia::core::errors::Error;
    use symphonia::core::formats::FormatOptions;
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;
    use symphonia::core::probe::Hint;

    let stream = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut hint = Hint::new();
    hint.with_extension("mp3");
    let options = FormatOptions {
        enable_gapless: true,
        ..FormatOptions::default()
    };
    let probed = symphonia::default::get_probe()
        .format(&hint, stream, &options, &MetadataOptions::default())
        .expect("an MP3 stream");
    let mut format = probed.format;
    let track = format.default_track().expect("a track").clone();
    let rate = track.codec_params.sample_rate.expect("a sample rate");
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .expect("an MP3 decoder");
    let mut frames = 0u64;
    loop {
        match format.next_packet() {
            Ok(packet) => frames += decoder.decode(&packet).expect("decodes").frames() as u64,
            Err(Error::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("reading the MP3 failed: {e}"),
        }
    }
    Duration::from_secs_f64(frames as f64 / f64::from(rate))
}

fn assert_close(got: Duration, want: Duration, what: &str) {
    let (g, w) = (got.as_secs_f64(), want.as_secs_f64());
    assert!((g - w).abs() <= w * 0.05, "{what}: decoded {g:.3} s, expected {w:.3} s ±5 %");
}

// ---------------------------------------------------------------------------------------------
// Conversion

#[tokio::test]
async fn converts_every_supported_format() {
    let dir = tempfile::tempdir().unwrap();
    let converter = Converter::new(32, 2);
    let cases = [
        (Gen::Pcm16, 1, 8000),
        (Gen::Pcm16, 2, 8000),
        (Gen::Pcm16, 2, 16000),
        (Gen::Pcm16, 1, 22050),
        (Gen::Pcm16, 2, 44100),
        (Gen::Pcm16, 1, 48000),
        (Gen::Pcm16, 1, 11025),
        (Gen::Pcm8, 1, 8000),
        (Gen::Pcm8, 2, 12000),
        (Gen::ALaw, 1, 8000),
        (Gen::ALaw, 2, 8000),
        (Gen::MuLaw, 1, 8000),
        (Gen::MuLaw, 2, 16000),
    ];
    for (format, channels, rate) in cases {
        let what = format!("{format:?} {channels} ch {rate} Hz");
        let input = WavInput::Memory {
            name: what.clone(),
            bytes: Bytes::from(tone(format, channels, rate, 2.0)),
        };
        let output = dir.path().join("out.mp3");
        let converted = converter.convert(input, output.clone()).await.expect(&what);
        assert_close(converted.audio, Duration::from_secs(2), &what);
        let mp3 = std::fs::read(&output).unwrap();
        assert_eq!(converted.mp3_bytes, mp3.len() as u64);
        assert_close(mp3_duration(mp3), Duration::from_secs(2), &what);
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "out.mp3")
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[tokio::test]
async fn converts_files_at_other_bitrates() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("[Mueller, Anna]_150-0123_20261124101530(1).wav");
    std::fs::write(&wav, tone(Gen::Pcm16, 1, 8000, 10.0)).unwrap();
    let mut sizes = Vec::new();
    for kbps in [16, 32, 64] {
        let output = dir.path().join(format!("{kbps}.mp3"));
        let converted = Converter::new(kbps, 1)
            .convert(WavInput::File(wav.clone()), output.clone())
            .await
            .unwrap();
        assert_close(mp3_duration(std::fs::read(&output).unwrap()), converted.audio, "file");
        sizes.push(converted.mp3_bytes as f64);
    }
    // CBR: size follows the bitrate (10 s at 32 kbit/s is 40 kB).
    assert!((sizes[1] / 40_000.0 - 1.0).abs() < 0.1, "{sizes:?}");
    assert!(sizes[0] < sizes[1] && sizes[1] < sizes[2], "{sizes:?}");
}

#[tokio::test]
async fn refuses_corrupt_and_unsupported_wavs_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let hound_wav = |bits, channels, format| {
        let spec = hound::WavSpec {
            channels,
            sample_rate: 8000,
            bits_per_sample: bits,
            sample_format: format,
        };
        let mut out = Cursor::new(Vec::new());
        let mut writer = hound::WavWriter::new(&mut out, spec).unwrap();
        for _ in 0..800 * channels {
            match format {
                hound::SampleFormat::Float => writer.write_sample(0.5f32).unwrap(),
                hound::SampleFormat::Int => writer.write_sample(100i32).unwrap(),
            }
        }
        writer.finalize().unwrap();
        out.into_inner()
    };
    let mut truncated = tone(Gen::Pcm16, 1, 8000, 1.0);
    truncated.truncate(truncated.len() / 2);
    let simulator_corrupt = b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x07\x00\x01".to_vec();
    let cases: [(&str, Vec<u8>, &str); 8] = [
        ("sim.wav", simulator_corrupt, "is not a valid WAV file: the `fmt ` chunk"),
        ("cut.wav", truncated, "is not a valid WAV file: the `data` chunk announces"),
        ("empty.wav", Vec::new(), "is not a valid WAV file: only 0 bytes"),
        ("text.wav", b"hello, this is not audio at all".to_vec(), "no RIFF/WAVE header"),
        ("24.wav", hound_wav(24, 1, hound::SampleFormat::Int), "unsupported format: 24-bit PCM"),
        ("f32.wav", hound_wav(32, 1, hound::SampleFormat::Float), "unsupported format: 32-bit float"),
        ("quad.wav", hound_wav(16, 4, hound::SampleFormat::Int), "unsupported format: 4 channels"),
        ("rate.wav", g711_wav(6, 1, 0, &[0; 10]), "is not a valid WAV file: a sample rate of 0 Hz"),
    ];
    for (name, bytes, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let output = dir.path().join("out.mp3");
        let error = Converter::new(32, 1)
            .convert(WavInput::File(path.clone()), output.clone())
            .await
            .expect_err(name)
            .to_string();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.contains(expected), "{name}: {error}");
        assert!(!output.exists());
    }
    let missing = dir.path().join("missing.wav");
    let error = Converter::new(32, 1)
        .convert(WavInput::File(missing.clone()), dir.path().join("x.mp3"))
        .await
        .unwrap_err();
    assert!(matches!(error, ConvertError::Read { .. }), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Serving

const KEY: &[u8] = b"test-link-key-0123456789";
const FILE: &str = "261124101530_501-1-1.mp3";

/// Serves a store holding `FILE` (1000 known bytes); returns the base URL and the store folder.
async fn serve_store(links: Links, dir: &Path) -> String {
    let store = Store::open(dir).unwrap();
    let body: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join(FILE), body).unwrap();
    std::fs::write(dir.join(".link-key"), "secret").unwrap();
    std::fs::create_dir_all(dir.join("sub.mp3")).unwrap();
    let server = RecordingServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), None)
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.run(serve::router(store, links), std::future::pending()));
    format!("http://{addr}")
}

/// Sends `GET {target}` exactly as written (no client-side path normalisation); the status.
async fn raw_get(base: &str, target: &str) -> u16 {
    let addr = base.trim_start_matches("http://").to_owned();
    tokio::task::spawn_blocking({
        let target = target.to_owned();
        move || {
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            write!(stream, "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
            let mut reply = String::new();
            let _ = stream.read_to_string(&mut reply);
            reply[9..12].parse().unwrap()
        }
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn serves_signed_links_with_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let base = serve_store(Links::new("http://unused", Some(KEY.to_vec()), Duration::from_secs(60)), dir.path()).await;
    let links = Links::new(&base, Some(KEY.to_vec()), Duration::from_secs(60));
    let url = links.url(FILE);
    let http = reqwest::Client::new();

    let reply = http.get(&url).send().await.unwrap();
    assert_eq!(reply.status(), 200);
    let header = |r: &reqwest::Response, h: &str| r.headers()[h].to_str().unwrap().to_owned();
    assert_eq!(header(&reply, "content-type"), "audio/mpeg");
    assert_eq!(header(&reply, "content-length"), "1000");
    assert_eq!(header(&reply, "accept-ranges"), "bytes");
    assert_eq!(reply.bytes().await.unwrap().len(), 1000);

    let head = http.head(&url).send().await.unwrap();
    assert_eq!((head.status().as_u16(), header(&head, "content-length")), (200, "1000".into()));

    for (range, status, content_range, first, len) in [
        ("bytes=10-19", 206, Some("bytes 10-19/1000"), Some(10u8), 10),
        ("bytes=990-", 206, Some("bytes 990-999/1000"), Some((990 % 251) as u8), 10),
        ("bytes=-5", 206, Some("bytes 995-999/1000"), Some((995 % 251) as u8), 5),
        ("bytes=1000-", 416, Some("bytes */1000"), None, 0),
        ("bytes=0-1,5-6", 200, None, Some(0), 1000),
    ] {
        let reply = http.get(&url).header("range", range).send().await.unwrap();
        assert_eq!(reply.status().as_u16(), status, "{range}");
        assert_eq!(
            reply.headers().get("content-range").map(|v| v.to_str().unwrap().to_owned()),
            content_range.map(str::to_owned),
            "{range}"
        );
        let body = reply.bytes().await.unwrap();
        assert_eq!((body.first().copied(), body.len()), (first, len), "{range}");
    }

    // Tampered, expired, unsigned, or signed for another file: 403.
    let expired = links.url_at(FILE, SystemTime::now() - Duration::from_secs(120));
    let other = links.url("261124101530_501-1-2.mp3").replace("501-1-2", "501-1-1");
    let tampered = {
        let mut url = url.clone();
        let last = url.pop().unwrap();
        url.push(if last == '0' { '1' } else { '0' });
        url
    };
    let unsigned = format!("{base}/webapi/recording/{FILE}");
    for bad in [tampered, expired, unsigned, other] {
        assert_eq!(http.get(&bad).send().await.unwrap().status(), 403, "{bad}");
    }
    // A valid signature for a file that does not exist: 404.
    let missing = links.url("261124101530_501-9-1.mp3");
    assert_eq!(http.get(&missing).send().await.unwrap().status(), 404);

    // Traversal and listing, sent raw so that no client normalises them.
    let query = url.split_once('?').unwrap().1;
    for (target, allowed) in [
        (format!("/webapi/recording/../../etc/passwd?{query}"), [400, 404]),
        (format!("/webapi/recording/..%2F..%2Fetc%2Fpasswd?{query}"), [400, 404]),
        (format!("/webapi/recording/%2e%2e%2f{FILE}?{query}"), [400, 404]),
        (format!("/webapi/recording/..%5C{FILE}?{query}"), [400, 404]),
        (format!("/webapi/recording/%2Fetc%2Fpasswd?{query}"), [400, 404]),
        (format!("/webapi/recording//etc/passwd?{query}"), [400, 404]),
        ("/webapi/recording/.link-key".to_owned(), [400, 404]),
        ("/webapi/recording/sub.mp3".to_owned(), [403, 404]),
        ("/webapi/recording/".to_owned(), [404, 404]),
        ("/webapi/recording".to_owned(), [404, 404]),
        ("/webapi/".to_owned(), [404, 404]),
        ("/".to_owned(), [404, 404]),
    ] {
        let status = raw_get(&base, &target).await;
        assert!(allowed.contains(&status), "{target}: {status}");
    }
}

#[tokio::test]
async fn serves_unsigned_links_when_signing_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let base = serve_store(Links::new("http://unused", None, Duration::from_secs(60)), dir.path()).await;
    let links = Links::new(&base, None, Duration::from_secs(60));
    let reply = reqwest::get(links.url(FILE)).await.unwrap();
    assert_eq!(reply.status(), 200);
    let sub = links.url("sub.mp3");
    assert_eq!(reqwest::get(sub).await.unwrap().status(), 404, "a folder is no file");
}

#[tokio::test]
async fn serves_https_from_pem_files() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let tls = TlsFiles {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    };
    std::fs::write(&tls.cert, cert.pem()).unwrap();
    std::fs::write(&tls.key, key.serialize_pem()).unwrap();
    let store = Store::open(dir.path().join("mp3")).unwrap();
    std::fs::write(store.dir().join(FILE), b"mp3").unwrap();

    let server = RecordingServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), Some(&tls))
        .await
        .unwrap();
    assert!(server.is_tls());
    let addr = server.local_addr().unwrap();
    let links = Links::new(&format!("https://localhost:{}", addr.port()), Some(KEY.to_vec()), Duration::from_secs(60));
    tokio::spawn(server.run(serve::router(store, links.clone()), std::future::pending()));
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap())
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let reply = http.get(links.url(FILE)).send().await.unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.bytes().await.unwrap().as_ref(), b"mp3");

    let wrong = TlsFiles {
        cert: tls.key.clone(),
        key: tls.key.clone(),
    };
    let error = RecordingServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), Some(&wrong))
        .await
        .err()
        .expect("a key is no certificate");
    assert!(error.to_string().contains("key.pem"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// The pipeline against a fake XAPI

/// An XAPI whose recordings the test adds; counts requests.
#[derive(Default)]
struct FakeXapi {
    recordings: Mutex<Vec<(XapiRecording, Bytes)>>,
    requests: Mutex<Vec<String>>,
}

impl RecordingSource for FakeXapi {
    fn recordings_after(&self, after: u64, top: u32) -> BoxFuture<'_, Result<Vec<XapiRecording>, SourceError>> {
        self.requests.lock().unwrap().push(format!("after {after}"));
        let list = self.recordings.lock().unwrap();
        let page = list.iter().map(|(r, _)| r.clone()).filter(|r| r.id > after).take(top as usize);
        let page: Vec<_> = page.collect();
        Box::pin(async move { Ok(page) })
    }

    fn newest_recordings(&self, top: u32) -> BoxFuture<'_, Result<Vec<XapiRecording>, SourceError>> {
        self.requests.lock().unwrap().push("newest".to_owned());
        let list = self.recordings.lock().unwrap();
        let page: Vec<_> = list.iter().rev().take(top as usize).map(|(r, _)| r.clone()).collect();
        Box::pin(async move { Ok(page) })
    }

    fn download_recording(&self, id: u64) -> BoxFuture<'_, Result<Bytes, SourceError>> {
        let list = self.recordings.lock().unwrap();
        let found = list.iter().find(|(r, _)| r.id == id).map(|(_, b)| b.clone());
        Box::pin(async move { found.ok_or_else(|| format!("no recording {id}").into()) })
    }
}

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

fn call_id(pbx_call_id: u64, link: u32) -> CallId {
    CallId {
        stamp: "270115080000".to_owned(),
        pbx_call_id,
        link,
    }
}

fn talk(id: CallId, extension: &str, start: Timestamp, end: Timestamp) -> CallPart {
    CallPart {
        id,
        extension: extension.to_owned(),
        other_number: "425630434343".to_owned(),
        talk_start: start,
        talk_end: end,
    }
}

fn xapi_recording(id: u64, dn: &str, start: Timestamp, end: Timestamp) -> XapiRecording {
    XapiRecording {
        id,
        recording_url: format!("{dn}/[X]_425630434343-{dn}_x({id}).wav"),
        start_time: start,
        end_time: end,
        from_dn: "10000".to_owned(),
        to_dn: dn.to_owned(),
        from_caller_number: "425630434343".to_owned(),
        to_caller_number: dn.to_owned(),
    }
}

fn config(dir: &Path, public_url: &str) -> RecordingsConfig {
    RecordingsConfig {
        enabled: true,
        mp3_dir: dir.join("mp3"),
        public_url: public_url.to_owned(),
        wait_limit: Duration::from_secs(20),
        parallel_conversions: 2,
        ..RecordingsConfig::default()
    }
}

#[tokio::test]
async fn pipeline_claims_early_recordings_and_reports_corrupt_ones() {
    let dir = tempfile::tempdir().unwrap();
    let xapi = Arc::new(FakeXapi::default());
    let old = xapi_recording(1, "120", ts(-9000), ts(-8000));
    xapi.recordings.lock().unwrap().push((old, Bytes::new()));
    let recorder = Recorder::new(&config(dir.path(), "https://pbx"), Some(xapi.clone())).unwrap();

    // Call 7: 120 then 130 (its WAV is corrupt); both recordings are there before the call is
    // handed over, next to one of another call.
    let wav = Bytes::from(tone(Gen::Pcm16, 1, 8000, 1.0));
    for (recording, bytes) in [
        (xapi_recording(2, "120", ts(0), ts(1)), wav.clone()),
        (xapi_recording(3, "140", ts(0), ts(1)), wav.clone()),
        (xapi_recording(4, "130", ts(2), ts(3)), Bytes::from_static(b"RIFF....WAVEjunk")),
    ] {
        xapi.recordings.lock().unwrap().push((recording, bytes));
    }
    let call = FinishedCall {
        pbx_call_id: 7,
        parts: vec![
            talk(call_id(7, 1), "120", ts(0), ts(1)),
            talk(call_id(7, 2), "130", ts(2), ts(3)),
        ],
        last_end: None,
    };
    let started = std::time::Instant::now();
    let Outcome::Ready { event, failures } = recorder.handle(&call).await else {
        panic!("expected a recording event");
    };
    assert!(started.elapsed() < Duration::from_secs(2), "no waiting when all parts have one");
    assert_eq!(event.id, call_id(7, 2));
    assert_eq!(event.files.len(), 1);
    assert!(event.files[0].starts_with("https://pbx/webapi/recording/270115080000_7-1-1.mp3?expires="));
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].file, "270115080000_7-2-1.mp3");
    let error = failures[0].error.to_string();
    assert!(error.contains("XAPI recording 4 (130/") && error.contains("not a valid WAV"), "{error}");
    assert!(recorder.store().dir().join("270115080000_7-1-1.mp3").exists());

    // The recording of call 8 (extension 140) was seen already and waits in the inbox.
    let call = FinishedCall {
        pbx_call_id: 8,
        parts: vec![talk(call_id(8, 1), "140", ts(0), ts(1))],
        last_end: None,
    };
    assert!(matches!(recorder.handle(&call).await, Outcome::Ready { .. }));
    let requests = xapi.requests.lock().unwrap().clone();
    assert_eq!(requests.first().map(String::as_str), Some("newest"), "{requests:?}");
}

#[tokio::test]
async fn pipeline_gives_up_after_the_wait_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = RecordingsConfig {
        wait_limit: Duration::from_millis(700),
        ..config(dir.path(), "https://pbx")
    };
    let xapi = Arc::new(FakeXapi::default());
    let recorder = Recorder::new(&config, Some(xapi.clone())).unwrap();
    let call = FinishedCall {
        pbx_call_id: 9,
        parts: vec![talk(call_id(9, 1), "120", ts(0), ts(1))],
        last_end: None,
    };
    match recorder.handle(&call).await {
        Outcome::NotFound { id, waited, .. } => {
            assert_eq!(id, call_id(9, 1));
            assert!(waited >= Duration::from_millis(700), "{waited:?}");
        }
        other => panic!("{other:?}"),
    }
    let polls = xapi.requests.lock().unwrap().len();
    assert!((3..=6).contains(&polls), "backoff: 0, 200, 600 ms: {polls} polls");
    let empty = FinishedCall { parts: Vec::new(), ..call };
    assert!(matches!(recorder.handle(&empty).await, Outcome::NothingToRecord));
    assert!(matches!(Recorder::new(&config, None), Err(RecorderError::NoXapiClient)));
}

// ---------------------------------------------------------------------------------------------
// End to end with the simulator

/// The simulator's XAPI over real HTTP, as the host's adapter over its REST client does it.
struct SimXapi {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl SimXapi {
    async fn connect(sim: &SimHandle) -> SimXapi {
        let http = reqwest::Client::new();
        let config = sim.config();
        let reply: Value = http
            .post(format!("{}/connect/token", sim.base_url()))
            .form(&[
                ("client_id", config.client_id.as_str()),
                ("client_secret", config.client_secret.as_str()),
                ("grant_type", "client_credentials"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = reply["access_token"].as_str().unwrap().to_owned();
        SimXapi { http, base: sim.base_url(), token }
    }

    async fn get(&self, path: &str) -> Result<reqwest::Response, SourceError> {
        let reply = self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await?;
        if !reply.status().is_success() {
            return Err(format!("HTTP {} for {path}", reply.status()).into());
        }
        Ok(reply)
    }

    async fn list(&self, path: String) -> Result<Vec<XapiRecording>, SourceError> {
        let body: Value = self.get(&path).await?.json().await?;
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        let recordings = body["value"].as_array().ok_or("no value")?;
        recordings
            .iter()
            .map(|r| {
                Ok(XapiRecording {
                    id: r["Id"].as_u64().ok_or("no Id")?,
                    recording_url: text(&r["RecordingUrl"]),
                    start_time: text(&r["StartTime"]).parse()?,
                    end_time: text(&r["EndTime"]).parse()?,
                    from_dn: text(&r["FromDn"]),
                    to_dn: text(&r["ToDn"]),
                    from_caller_number: text(&r["FromCallerNumber"]),
                    to_caller_number: text(&r["ToCallerNumber"]),
                })
            })
            .collect()
    }
}

impl RecordingSource for SimXapi {
    fn recordings_after(&self, after: u64, top: u32) -> BoxFuture<'_, Result<Vec<XapiRecording>, SourceError>> {
        Box::pin(self.list(format!(
            "/xapi/v1/Recordings?$filter=Id%20gt%20{after}&$orderby=Id%20asc&$top={top}"
        )))
    }

    fn newest_recordings(&self, top: u32) -> BoxFuture<'_, Result<Vec<XapiRecording>, SourceError>> {
        Box::pin(self.list(format!("/xapi/v1/Recordings?$orderby=Id%20desc&$top={top}")))
    }

    fn download_recording(&self, id: u64) -> BoxFuture<'_, Result<Bytes, SourceError>> {
        Box::pin(async move {
            let path = format!("/xapi/v1/Recordings/Pbx.DownloadRecording(recId={id})");
            Ok(self.get(&path).await?.bytes().await?)
        })
    }
}

/// The time scale the scenarios play at: scenario 5's talks last 1.5 s and 3 s.
const SCALE: f64 = 0.05;

/// The finished call of scenario 5 (blind transfer 120 → 130) played from `wall`, as the
/// engine reports it: 120 talked t5–t35 under link 1, 130 t40–t100 under link 2.
fn blind_transfer_call(wall: SystemTime, callid: u64) -> FinishedCall {
    let at = |t: f64| Timestamp::try_from(wall + Duration::from_secs_f64(t * SCALE)).unwrap();
    FinishedCall {
        pbx_call_id: callid,
        parts: vec![
            talk(call_id(callid, 1), "120", at(5.0), at(35.0)),
            talk(call_id(callid, 2), "130", at(40.0), at(100.0)),
        ],
        last_end: None,
    }
}

/// Binds a plain recordings server on a free port; it serves `recorder` once started.
async fn start_server(config_for: impl FnOnce(String) -> (RecordingsConfig, Option<Arc<dyn RecordingSource>>)) -> Recorder {
    let server = RecordingServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), None)
        .await
        .unwrap();
    let (config, xapi) = config_for(format!("http://{}", server.local_addr().unwrap()));
    let recorder = Recorder::new(&config, xapi).unwrap();
    tokio::spawn(server.run(recorder.router(), std::future::pending()));
    recorder
}

/// Downloads each link and checks it decodes to the recording's length.
async fn check_links(files: &[String], sim: &SimHandle, first_id: u64) {
    for (file, recording) in files.iter().zip(sim.recordings().iter().filter(|r| r.id >= first_id)) {
        let reply = reqwest::get(file).await.unwrap();
        assert_eq!(reply.status(), 200, "{file}");
        assert_eq!(reply.headers()["content-type"], "audio/mpeg");
        let mp3 = reply.bytes().await.unwrap().to_vec();
        let wav_length = recording.end.duration_since(recording.start).unwrap();
        assert_close(mp3_duration(mp3), wav_length, file);
    }
}

#[tokio::test]
async fn end_to_end_with_the_simulator_over_xapi() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let scenario = Scenario::builtin("05-blind-transfer").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let xapi: Arc<dyn RecordingSource> = Arc::new(SimXapi::connect(&sim).await);
    let recorder = start_server(|url| (config(dir.path(), &url), Some(xapi))).await;

    let wall = SystemTime::now();
    sim.play(&scenario, SCALE).await.unwrap();
    let Outcome::Ready { event, failures } = recorder.handle(&blind_transfer_call(wall, 501)).await else {
        panic!("expected a recording event");
    };
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(sim.recordings().len(), 2, "two recordings for the transfer");
    assert_eq!(event.id, call_id(501, 2), "the id of the last part");
    assert_eq!(event.files.len(), 2);
    assert!(event.files[0].contains("/webapi/recording/270115080000_501-1-1.mp3?expires="));
    assert!(event.files[1].contains("/webapi/recording/270115080000_501-2-1.mp3?expires="));
    check_links(&event.files, &sim, 1).await;

    // Tampered and expired links are refused; traversal finds nothing.
    let tampered = event.files[0].replace("501-1-1", "501-2-1");
    let expired = recorder
        .links()
        .url_at("270115080000_501-1-1.mp3", SystemTime::now() - Duration::from_secs(31 * 86_400));
    for bad in [tampered, expired] {
        assert_eq!(reqwest::get(&bad).await.unwrap().status(), 403, "{bad}");
    }
    let base = event.files[0].split("/webapi/").next().unwrap().to_owned();
    let status = raw_get(&base, "/webapi/recording/../../../etc/passwd").await;
    assert!(status == 400 || status == 404, "{status}");

    // The next call's recording is served corrupt: reported, not dropped.
    let direct = Scenario::builtin("01-direct-inbound-answered").unwrap().renumbered(1000, 10_000);
    sim.faults().corrupt_recording(3);
    sim.play(&direct, SCALE).await.unwrap();
    let info = sim.recordings().into_iter().find(|r| r.id == 3).unwrap();
    let callid = info.callid;
    let other = direct.expected()[0].fields["callerid"].clone();
    let call = FinishedCall {
        pbx_call_id: callid,
        parts: vec![CallPart {
            other_number: other,
            ..talk(call_id(callid, 1), &info.dn, Timestamp::try_from(info.start).unwrap(), Timestamp::try_from(info.end).unwrap())
        }],
        last_end: None,
    };
    match recorder.handle(&call).await {
        Outcome::Failed { id, failures } => {
            assert_eq!(id, call_id(callid, 1));
            let error = failures[0].error.to_string();
            assert!(error.contains("XAPI recording 3") && error.contains("not a valid WAV file"), "{error}");
        }
        other => panic!("expected a failure report, got {other:?}"),
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn end_to_end_with_the_simulator_over_the_folder() {
    let folder = tempfile::tempdir().unwrap();
    let sim = Simulator::start(SimConfig {
        recordings_folder: Some(folder.path().to_owned()),
        wav_format: callhook_simulator::WavFormat::Pcm16Stereo,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let scenario = Scenario::builtin("05-blind-transfer").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let recorder = start_server(|url| {
        let config = RecordingsConfig {
            source: SourceKind::Folder,
            folder: folder.path().to_owned(),
            folder_time_zone: jiff::tz::TimeZone::UTC,
            ..config(dir.path(), &url)
        };
        (config, None)
    })
    .await;
    let wall = SystemTime::now();
    let play = sim.play(&scenario, SCALE);
    let call = blind_transfer_call(wall, 501);
    // Handed over while the call is still playing: the watcher sees the files appear.
    let (played, outcome) = tokio::join!(play, recorder.handle(&call));
    played.unwrap();
    let Outcome::Ready { event, failures } = outcome else {
        panic!("expected a recording event, got {outcome:?}");
    };
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(event.files.len(), 2, "{:?}", event.files);
    check_links(&event.files, &sim, 1).await;
    let files: Vec<PathBuf> = sim.recordings().iter().filter_map(|r| r.file.clone()).collect();
    assert_eq!(files.len(), 2);
    sim.shutdown().await;
}
