//! Any HTML a Matrix user sends becomes IRC lines that are safe protocol lines.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigbot::core::format::html_to_irc;
use sigbot::core::irc_text::split_lines;

fuzz_target!(|html: &str| {
    let mut pasted = 0usize;
    let Some(text) = html_to_irc(html, &mut |code| {
        pasted += code.len();
        "(code)".to_owned()
    }) else {
        return;
    };
    for line in split_lines(&text, 400) {
        assert!(line.len() <= 400);
        assert!(!line.contains(['\r', '\n', '\0', '\x01']));
    }
});
