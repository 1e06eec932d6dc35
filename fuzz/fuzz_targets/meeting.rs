#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| sigbot::fuzzing::meeting(data));
