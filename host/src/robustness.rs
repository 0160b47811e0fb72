//! Inputs for the robustness property tests of the parsers: arbitrary bytes, and byte
//! mutations of a valid input (which reach much deeper into a parser than pure noise does).
//!
//! The property in every `proptests` module that uses these is the same: whatever the bytes,
//! the parser answers `Ok` or `Err`, never panics, and never allocates what the input merely
//! claims. Inputs are capped at [`MAX_INPUT`] bytes, so memory use is bounded by the input,
//! not by numbers written inside it.
//!
//! The modules: `pbx/socket/proptests.rs` (event socket frames), `pbx/rest/proptests.rs`
//! (participant and snapshot JSON), `pbx/xapi/proptests.rs` (XAPI pages),
//! `recordings/wav/proptests.rs` (the WAV reader), `config/legacy_ini/proptests.rs` (the ini
//! reader) and `config/proptests.rs` (loading and validating `callhook.toml`).
//!
//! **Time budget**: all of them together must stay under 20 seconds in a debug build on two
//! cores (`cargo test -p callhook --lib proptests`, which CI runs), hence [`CASES`] cases per
//! property. Raise it locally (`PROPTEST_CASES=10000`) for a longer hunt; the CI value is a
//! smoke test, not a fuzzing campaign.

use proptest::prelude::*;
use proptest::sample::Index;

/// The largest input a robustness property feeds a parser: 64 KiB.
pub(crate) const MAX_INPUT: usize = 64 * 1024;

/// Cases per robustness property, chosen for the time budget above.
pub(crate) const CASES: u32 = 256;

/// The configuration of a robustness property: [`CASES`] cases, unless `PROPTEST_CASES` says
/// otherwise.
pub(crate) fn config() -> ProptestConfig {
    let default = ProptestConfig::default();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() {
        default.cases
    } else {
        CASES
    };
    ProptestConfig { cases, ..default }
}

/// Arbitrary bytes, mostly short, sometimes up to [`MAX_INPUT`].
pub(crate) fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..256),
        1 => proptest::collection::vec(any::<u8>(), 0..=MAX_INPUT),
    ]
}

/// Byte sequences that upset parsers when spliced in: structure, escapes, huge and odd numbers.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b"\\u",
    b"\\ud800",
    b"\\u0000",
    b",",
    b":",
    b"=",
    b"\n",
    b"\r\n",
    b"\0",
    b"\xff",
    b"\xef\xbb\xbf",
    b"\xf0\x9f\x93\x9e",
    b"null",
    b"true",
    b"-",
    b"-0",
    b"1e999",
    b"-1",
    b"0.5",
    b"18446744073709551616",
    b"99999999999999999999999999999999",
    b"\xff\xff\xff\xff",
    b"\xff\xff\xff\x7f",
    b"\0\0\0\x80",
    b"[[",
    b"'''",
    b"\"\"\"",
];

/// One edit of [`mutated`].
#[derive(Debug, Clone)]
enum Edit {
    /// Overwrite one byte.
    Set(Index, u8),
    /// Flip one bit of one byte.
    Flip(Index, u8),
    /// Insert one of [`TOKENS`].
    Token(Index, Index),
    /// Remove up to this many bytes.
    Remove(Index, usize),
    /// Repeat a slice of up to 64 bytes this many times (capped at [`MAX_INPUT`]).
    Repeat(Index, usize, usize),
    /// Cut the input here.
    Truncate(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<Index>(), any::<u8>()).prop_map(|(at, b)| Edit::Set(at, b)),
        3 => (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Edit::Flip(at, bit)),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(at, t)| Edit::Token(at, t)),
        2 => (any::<Index>(), 1usize..16).prop_map(|(at, n)| Edit::Remove(at, n)),
        1 => (any::<Index>(), 1usize..64, 1usize..2048).prop_map(|(at, n, k)| Edit::Repeat(at, n, k)),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ]
}

/// `seed` changed by one to eight random edits; never longer than [`MAX_INPUT`].
pub(crate) fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(edit(), 1..=8).prop_map(move |edits| {
        let mut out = seed.clone();
        for edit in edits {
            apply(&mut out, edit);
        }
        out.truncate(MAX_INPUT);
        out
    })
}

/// One of `seeds`, mutated.
pub(crate) fn mutated_from(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let strategies: Vec<_> = seeds.into_iter().map(mutated).collect();
    proptest::strategy::Union::new(strategies)
}

fn apply(out: &mut Vec<u8>, edit: Edit) {
    // Positions between bytes: 0..=len.
    let at = |index: &Index, out: &Vec<u8>| index.index(out.len() + 1);
    match edit {
        Edit::Set(i, b) if !out.is_empty() => {
            let i = i.index(out.len());
            out[i] = b;
        }
        Edit::Flip(i, bit) if !out.is_empty() => {
            let i = i.index(out.len());
            out[i] ^= 1 << bit;
        }
        Edit::Token(i, t) => {
            let i = at(&i, out);
            let token = TOKENS[t.index(TOKENS.len())];
            out.splice(i..i, token.iter().copied());
        }
        Edit::Remove(i, n) => {
            let i = at(&i, out);
            let end = (i + n).min(out.len());
            out.drain(i..end);
        }
        Edit::Repeat(i, n, k) => {
            let i = at(&i, out);
            let end = (i + n).min(out.len());
            let slice = out[i..end].to_vec();
            if slice.is_empty() {
                return;
            }
            let room = MAX_INPUT.saturating_sub(out.len()) / slice.len();
            let repeated: Vec<u8> = slice.repeat(k.min(room));
            out.splice(end..end, repeated);
        }
        Edit::Truncate(i) => {
            let i = at(&i, out);
            out.truncate(i);
        }
        Edit::Set(..) | Edit::Flip(..) => {}
    }
}

/// `depth` nestings of `open`, then `close` as many times: the input that overflows the stack
/// of a recursive parser without a depth limit.
pub(crate) fn nested(open: &str, inner: &str, close: &str, depth: usize) -> String {
    let mut out = String::with_capacity((open.len() + close.len()) * depth + inner.len());
    for _ in 0..depth {
        out.push_str(open);
    }
    out.push_str(inner);
    for _ in 0..depth {
        out.push_str(close);
    }
    out
}
