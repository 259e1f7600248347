//! TensorBoard's `Event` protobuf message, encoded by hand: only the fields scalar logs need,
//! so no protobuf dependency. From tensorboard's `event.proto` and `summary.proto`:
//!
//! ```text
//! Event      { double wall_time = 1; int64 step = 2;
//!              oneof what { string file_version = 3; Summary summary = 5; SessionLog session_log = 7; } }
//! Summary    { repeated Value value = 1; }
//! Value      { string tag = 1; float simple_value = 2; }
//! SessionLog { SessionStatus status = 1; }   // START = 1
//! ```

/// What an event carries besides its time and step.
pub enum Payload<'a> {
    /// The first event of every file: the format, "brain.Event:2".
    FileVersion(&'a str),
    /// Scalars (tag, value) logged at the step.
    Scalars(&'a [(String, f32)]),
    /// A (re)start at the step: readers drop what earlier files logged at this step or later.
    SessionStart,
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;
const SESSION_STATUS_START: u64 = 1;

/// The serialized `Event`.
pub fn encode(wall_time: f64, step: i64, payload: Payload) -> Vec<u8> {
    let mut event = Vec::new();
    key(&mut event, 1, FIXED64);
    event.extend_from_slice(&wall_time.to_le_bytes());
    key(&mut event, 2, VARINT);
    varint(&mut event, step as u64);
    match payload {
        Payload::FileVersion(version) => len_field(&mut event, 3, version.as_bytes()),
        Payload::Scalars(scalars) => len_field(&mut event, 5, &summary(scalars)),
        Payload::SessionStart => {
            let mut session_log = Vec::new();
            key(&mut session_log, 1, VARINT);
            varint(&mut session_log, SESSION_STATUS_START);
            len_field(&mut event, 7, &session_log);
        }
    }
    event
}

fn summary(scalars: &[(String, f32)]) -> Vec<u8> {
    let mut summary = Vec::new();
    for (tag, value) in scalars {
        let mut entry = Vec::new();
        len_field(&mut entry, 1, tag.as_bytes());
        key(&mut entry, 2, FIXED32);
        entry.extend_from_slice(&value.to_le_bytes());
        len_field(&mut summary, 1, &entry);
    }
    summary
}

fn key(buf: &mut Vec<u8>, field: u64, wire_type: u8) {
    varint(buf, field << 3 | wire_type as u64);
}

fn len_field(buf: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    key(buf, field, LEN);
    varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

/// Base-128 varint, least significant group first.
fn varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8 & 0x7F) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// wall_time 1.5 and step 300 as every event starts: field 1 (fixed64) with 1.5's IEEE
    /// bytes, field 2 with the varint of 300 (0xAC 0x02).
    const HEAD: [u8; 12] = [
        0x09, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F, // wall_time 1.5
        0x10, 0xAC, 0x02, // step 300
    ];

    fn with_head(tail: &[u8]) -> Vec<u8> {
        [&HEAD[..], tail].concat()
    }

    #[test]
    fn file_version_event() {
        let mut tail = vec![0x1A, 13];
        tail.extend_from_slice(b"brain.Event:2");
        assert_eq!(
            encode(1.5, 300, Payload::FileVersion("brain.Event:2")),
            with_head(&tail)
        );
    }

    #[test]
    fn scalar_event_nests_values_in_a_summary() {
        let scalars = [("a".to_string(), 2.0f32), ("bc".to_string(), -1.0f32)];
        let value_a = [0x0A, 1, b'a', 0x15, 0, 0, 0, 0x40];
        let value_bc = [0x0A, 2, b'b', b'c', 0x15, 0, 0, 0x80, 0xBF];
        let summary = [&[0x0A, 8][..], &value_a, &[0x0A, 9], &value_bc].concat();
        let tail = [&[0x2A, summary.len() as u8][..], &summary].concat();
        assert_eq!(
            encode(1.5, 300, Payload::Scalars(&scalars)),
            with_head(&tail)
        );
    }

    #[test]
    fn session_start_event() {
        assert_eq!(
            encode(1.5, 300, Payload::SessionStart),
            with_head(&[0x3A, 2, 0x08, 1])
        );
    }
}
