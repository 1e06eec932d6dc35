#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sigbot::fuzzing::irc_to_html(data));
