//! The splitter never lets a protocol line through, never exceeds its budget, never cuts a
//! character in two (a `&str` could not hold one), and loses no visible text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigbot::core::irc_text::{clean, split_lines};

fuzz_target!(|input: (u16, &str)| {
    let (budget, text) = input;
    let budget = usize::from(budget % 600).max(4);
    let out = split_lines(text, budget);
    for l in &out {
        assert!(l.len() <= budget);
        assert!(!l.is_empty());
        assert!(!l.contains(['\r', '\n', '\0', '\x01']));
    }
    let squash = |s: &str| -> String { clean(s).chars().filter(|c| !c.is_whitespace()).collect() };
    assert_eq!(squash(&out.concat()), squash(text));
});
