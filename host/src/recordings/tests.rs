//! The recordings suite: conversion of every format and serving here; the pipeline against a
//! fake XAPI and end to end against the 3CX simulator in `tests/pipeline.rs`.

use std::io::{Cursor, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::*;
use crate::server::{HttpServer, TlsFiles};

mod pipeline;

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
    assert!(
        (g - w).abs() <= w * 0.05,
        "{what}: decoded {g:.3} s, expected {w:.3} s ±5 %"
    );
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
    let wav = dir
        .path()
        .join("[Mueller, Anna]_150-0123_20261124101530(1).wav");
    std::fs::write(&wav, tone(Gen::Pcm16, 1, 8000, 10.0)).unwrap();
    let mut sizes = Vec::new();
    for kbps in [16, 32, 64] {
        let output = dir.path().join(format!("{kbps}.mp3"));
        let converted = Converter::new(kbps, 1)
            .convert(WavInput::File(wav.clone()), output.clone())
            .await
            .unwrap();
        assert_close(
            mp3_duration(std::fs::read(&output).unwrap()),
            converted.audio,
            "file",
        );
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
        (
            "sim.wav",
            simulator_corrupt,
            "is not a valid WAV file: the `fmt ` chunk",
        ),
        (
            "cut.wav",
            truncated,
            "is not a valid WAV file: the `data` chunk announces",
        ),
        (
            "empty.wav",
            Vec::new(),
            "is not a valid WAV file: only 0 bytes",
        ),
        (
            "text.wav",
            b"hello, this is not audio at all".to_vec(),
            "no RIFF/WAVE header",
        ),
        (
            "24.wav",
            hound_wav(24, 1, hound::SampleFormat::Int),
            "unsupported format: 24-bit PCM",
        ),
        (
            "f32.wav",
            hound_wav(32, 1, hound::SampleFormat::Float),
            "unsupported format: 32-bit float",
        ),
        (
            "quad.wav",
            hound_wav(16, 4, hound::SampleFormat::Int),
            "unsupported format: 4 channels",
        ),
        (
            "rate.wav",
            g711_wav(6, 1, 0, &[0; 10]),
            "is not a valid WAV file: a sample rate of 0 Hz",
        ),
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
    let server = HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), None)
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
            write!(
                stream,
                "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
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
    let base = serve_store(
        Links::new("http://unused", Some(KEY.to_vec()), Duration::from_secs(60)),
        dir.path(),
    )
    .await;
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
    assert_eq!(
        (head.status().as_u16(), header(&head, "content-length")),
        (200, "1000".into())
    );

    for (range, status, content_range, first, len) in [
        ("bytes=10-19", 206, Some("bytes 10-19/1000"), Some(10u8), 10),
        (
            "bytes=990-",
            206,
            Some("bytes 990-999/1000"),
            Some((990 % 251) as u8),
            10,
        ),
        (
            "bytes=-5",
            206,
            Some("bytes 995-999/1000"),
            Some((995 % 251) as u8),
            5,
        ),
        ("bytes=1000-", 416, Some("bytes */1000"), None, 0),
        ("bytes=0-1,5-6", 200, None, Some(0), 1000),
    ] {
        let reply = http.get(&url).header("range", range).send().await.unwrap();
        assert_eq!(reply.status().as_u16(), status, "{range}");
        assert_eq!(
            reply
                .headers()
                .get("content-range")
                .map(|v| v.to_str().unwrap().to_owned()),
            content_range.map(str::to_owned),
            "{range}"
        );
        let body = reply.bytes().await.unwrap();
        assert_eq!((body.first().copied(), body.len()), (first, len), "{range}");
    }

    // Tampered, expired, unsigned, or signed for another file: 403.
    let expired = links.url_at(FILE, SystemTime::now() - Duration::from_secs(120));
    let other = links
        .url("261124101530_501-1-2.mp3")
        .replace("501-1-2", "501-1-1");
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
        (
            format!("/webapi/recording/../../etc/passwd?{query}"),
            [400, 404],
        ),
        (
            format!("/webapi/recording/..%2F..%2Fetc%2Fpasswd?{query}"),
            [400, 404],
        ),
        (
            format!("/webapi/recording/%2e%2e%2f{FILE}?{query}"),
            [400, 404],
        ),
        (format!("/webapi/recording/..%5C{FILE}?{query}"), [400, 404]),
        (
            format!("/webapi/recording/%2Fetc%2Fpasswd?{query}"),
            [400, 404],
        ),
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
    let base = serve_store(
        Links::new("http://unused", None, Duration::from_secs(60)),
        dir.path(),
    )
    .await;
    let links = Links::new(&base, None, Duration::from_secs(60));
    let reply = reqwest::get(links.url(FILE)).await.unwrap();
    assert_eq!(reply.status(), 200);
    let sub = links.url("sub.mp3");
    assert_eq!(
        reqwest::get(sub).await.unwrap().status(),
        404,
        "a folder is no file"
    );
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

    let server = HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), Some(&tls))
        .await
        .unwrap();
    assert!(server.is_tls());
    let addr = server.local_addr().unwrap();
    let links = Links::new(
        &format!("https://localhost:{}", addr.port()),
        Some(KEY.to_vec()),
        Duration::from_secs(60),
    );
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
    let error = HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), Some(&wrong))
        .await
        .err()
        .expect("a key is no certificate");
    assert!(error.to_string().contains("key.pem"), "{error}");
}
