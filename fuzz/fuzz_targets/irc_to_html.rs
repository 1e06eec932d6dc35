//! Any IRC text becomes HTML whose only tags are the converter's own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigbot::core::format::{irc_to_html, strip_irc_formatting};

const OWN: &[&str] = &[
    "b>", "/b>", "i>", "/i>", "u>", "/u>", "del>", "/del>", "code>", "/code>", "font ", "/font>",
    "br>",
];

fuzz_target!(|text: &str| {
    let _ = strip_irc_formatting(text);
    if let Some(html) = irc_to_html(text) {
        let mut rest = html.as_str();
        while let Some(i) = rest.find('<') {
            rest = &rest[i + 1..];
            assert!(OWN.iter().any(|t| rest.starts_with(t)), "{html:?}");
        }
    }
});
