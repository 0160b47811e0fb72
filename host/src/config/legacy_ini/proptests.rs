//! Robustness of the legacy ini reader ([`parse_ini`]): any text, and any mutation of the
//! example `webhooks.ini`, is read into the raw shape with problems, never a panic, and every
//! problem names a line of the file (budget and inputs: `crate::robustness`).

use proptest::prelude::*;

use super::parse_ini;
use crate::config::errors::Pos;
use crate::robustness::{self, bytes, mutated};

const EXAMPLE: &str = include_str!("../../../../config/webhooks.ini");

/// Reads `bytes` (lossily, as the loader only hands over UTF-8) and checks every problem's line.
fn read(bytes: &[u8]) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(bytes);
    let (_, problems) = parse_ini(&text, 0);
    let lines = text.lines().count();
    for problem in &problems {
        prop_assert_eq!(problem.at.file, 0);
        if let Pos::Line(line) = problem.at.pos {
            prop_assert!((1..=lines).contains(&line), "line {} of {}", line, lines);
        }
        let _ = problem.kind.to_string();
    }
    Ok(())
}

proptest! {
    #![proptest_config(robustness::config())]

    #[test]
    fn arbitrary_bytes_are_read_with_problems(bytes in bytes()) {
        read(&bytes)?;
    }

    #[test]
    fn arbitrary_lines_are_read_with_problems(text in "([\\[\\]=:;#\" a-zA-Z0-9_\r\n\u{feff}]{0,40}\n){0,40}") {
        read(text.as_bytes())?;
    }

    #[test]
    fn mutated_examples_are_read_with_problems(bytes in mutated(EXAMPLE.as_bytes().to_vec())) {
        read(&bytes)?;
    }
}

#[test]
fn the_example_has_no_problems() {
    let (_, problems) = parse_ini(EXAMPLE, 0);
    assert!(problems.is_empty(), "{problems:?}");
}
