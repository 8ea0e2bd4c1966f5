#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mte_relay_protocol::fuzzing::identity(data);
});
