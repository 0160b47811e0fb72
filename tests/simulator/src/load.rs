//! Load scenarios: many concurrent calls, generated as a scenario file and parsed like any other.
//!
//! Going through the TOML text keeps one path for every scenario (the same validation and
//! expansion) and shows that the format expresses what the generator makes. Call `i` gets its
//! own extension (`first_extension + i`) and external number, starts at `ramp * i / n` and is of
//! one of four kinds in turn: inbound answered, outbound answered, inbound missed (ringing as long
//! as the others talk), inbound answered with a hold in the middle. With the defaults every call talks for 30 s and all start
//! within 10 s, so all are up at once.

use std::fmt::Write;
use std::time::Duration;

use crate::Scenario;

/// The shape of a [`Scenario::load`] scenario.
#[derive(Debug, Clone)]
pub struct LoadProfile {
    /// Call id of the first call; the others count up. By default 100000.
    pub first_callid: u64,
    /// Extension of the first call; the others count up. By default 2000.
    pub first_extension: u64,
    /// First participant id; keep ranges apart when playing beside other scenarios. By default
    /// 1000000.
    pub first_participant_id: u64,
    /// The calls start evenly spread over this time. By default 10 s.
    pub ramp: Duration,
    /// How long each call rings (or the callee takes to answer). By default 3 s.
    pub ring: Duration,
    /// How long answered calls talk, in whole seconds. By default 30 s.
    pub talk: Duration,
    /// The DID inbound calls dialled (the calls' `did`; in `party_did` only with
    /// [`crate::Variant::did_in_party_did`], else the host maps their trunk `10007`). By default
    /// `"4930123456"`.
    pub did: String,
    /// The `did` value the webhooks of inbound calls must carry (the inbound rule's name for
    /// `did`). By default `"CompanyDID"`.
    pub expected_did: String,
}

impl Default for LoadProfile {
    fn default() -> Self {
        LoadProfile {
            first_callid: 100_000,
            first_extension: 2000,
            first_participant_id: 1_000_000,
            ramp: Duration::from_secs(10),
            ring: Duration::from_secs(3),
            talk: Duration::from_secs(30),
            did: "4930123456".to_owned(),
            expected_did: "CompanyDID".to_owned(),
        }
    }
}

impl Scenario {
    /// A scenario of `n_calls` concurrent calls shaped by `profile`, with its expectations.
    pub fn load(n_calls: usize, profile: &LoadProfile) -> Scenario {
        let text = load_toml(n_calls, profile);
        Scenario::from_toml_str(&text).expect("generated load scenarios are valid")
    }
}

/// The scenario text of [`Scenario::load`].
fn load_toml(n: usize, p: &LoadProfile) -> String {
    let mut out = String::new();
    let talk = p.talk.as_secs();
    let ring = p.ring.as_secs_f64();
    let _ = writeln!(out, "name = \"load-{n}\"");
    let _ = writeln!(out, "description = \"{n} concurrent calls (generated)\"");
    let _ = writeln!(out, "first_participant_id = {}", p.first_participant_id);
    for i in 0..n as u64 {
        let _ = writeln!(
            out,
            "\n[[dn]]\ndn = \"{}\"\nname = \"Load, Agent {i}\"",
            p.first_extension + i
        );
    }
    for i in 0..n as u64 {
        let ext = p.first_extension + i;
        let callid = p.first_callid + i;
        let number = format!("49171{:07}", i);
        let t0 = p.ramp.as_secs_f64() * i as f64 / n.max(1) as f64;
        let at = |offset: f64| format!("{:.3}", t0 + offset);
        let kind = i % 4;
        let did = if kind == 1 { "" } else { p.did.as_str() };
        let _ = writeln!(
            out,
            "\n[[call]]\ncallid = {callid}\nexternal = \"{number}\"\ndid = \"{did}\""
        );
        let mut step = |at: String, action: &str, dn: bool| {
            let dn = if dn {
                format!("\ndn = \"{ext}\"")
            } else {
                String::new()
            };
            let _ = writeln!(out, "[[call.step]]\nat = {at}\naction = \"{action}\"{dn}");
        };
        let end = ring + talk as f64;
        match kind {
            1 => {
                step(at(0.0), "dial", true);
                step(at(ring), "remote_answer", false);
                step(at(end), "hangup", false);
            }
            2 => {
                // The caller waits as long as the others talk, then gives up.
                step(at(0.0), "ring", true);
                step(at(end), "hangup", false);
            }
            _ => {
                step(at(0.0), "ring", true);
                step(at(ring), "answer", true);
                if kind == 3 {
                    step(at(ring + talk as f64 / 3.0), "hold", true);
                    step(at(ring + 2.0 * talk as f64 / 3.0), "resume", true);
                }
                step(at(end), "hangup", false);
            }
        }
        let expected_did = if kind == 1 {
            ""
        } else {
            p.expected_did.as_str()
        };
        let mut expect = |link: u32, event: &str, extra: &str| {
            let _ = writeln!(
                out,
                "[[expect]]\ncall = {callid}\nlink = {link}\nevent = \"{event}\"\ncallerid = \"{number}\"\n\
                 user = \"{ext}\"\ndid = \"{expected_did}\"\n{extra}"
            );
        };
        match kind {
            1 => {
                expect(0, "dialing", "usertype = \"ext\"");
                expect(1, "outgoingcall_started", "trtype = \"NotDef\"");
                expect(
                    1,
                    "outgoing",
                    &format!("finishtype = \"Ok\"\ntransfer = false\nduration = {talk}"),
                );
            }
            2 => {
                expect(0, "ringing", "usertype = \"ext\"");
                expect(
                    0,
                    "incoming",
                    "finishtype = \"Missed\"\ntransfer = false\nduration = 0",
                );
            }
            _ => {
                expect(0, "ringing", "usertype = \"ext\"");
                expect(1, "incomingcall_started", "trtype = \"NotDef\"");
                expect(
                    1,
                    "incoming",
                    &format!("finishtype = \"Ok\"\ntransfer = false\nduration = {talk}"),
                );
            }
        }
    }
    out
}
