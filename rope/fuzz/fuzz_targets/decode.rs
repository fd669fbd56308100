//! Fuzzes both decoders: any bytes must decode or fail with an error, never
//! panic, and whatever decodes must encode again and decode to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mafalda_rope::codec::{cbor, json};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = cbor::decode(data) {
        let bytes = cbor::encode(&message).expect("a decoded message encodes");
        assert_eq!(cbor::decode(&bytes).expect("re-decodes"), message);
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(message) = json::decode(text)
    {
        // JSON cannot hold every CBOR value (non-text map keys), but what came
        // from JSON can go back to JSON.
        let again = json::encode(&message).expect("a decoded JSON message encodes");
        assert!(json::decode(&again).is_ok());
    }
});
