//! Shapes of the generated field tables (`tables.rs`, made by `native/gen_tables.py`).

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Double,
    Float,
    Int64,
    Uint64,
    Int32,
    Fixed64,
    Fixed32,
    Bool,
    String,
    Message,
    /// base64 in JSON
    Bytes,
    /// `trace_id`, `span_id`, `parent_span_id`: hex in JSON
    HexId,
    Uint32,
    Enum,
    Sfixed32,
    Sfixed64,
    Sint32,
    Sint64,
}

impl Kind {
    /// The protobuf wire type of one (unpacked) value.
    pub fn wire_type(self) -> u32 {
        match self {
            Kind::Double | Kind::Fixed64 | Kind::Sfixed64 => 1,
            Kind::Float | Kind::Fixed32 | Kind::Sfixed32 => 5,
            Kind::String | Kind::Message | Kind::Bytes | Kind::HexId => 2,
            _ => 0,
        }
    }

    /// The name the error messages use (the Python codec's kind names).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Double => "double",
            Kind::Float => "float",
            Kind::Int64 => "int64",
            Kind::Uint64 => "uint64",
            Kind::Int32 => "int32",
            Kind::Fixed64 => "fixed64",
            Kind::Fixed32 => "fixed32",
            Kind::Bool => "bool",
            Kind::String => "string",
            Kind::Message => "message",
            Kind::Bytes => "bytes",
            Kind::HexId => "hexid",
            Kind::Uint32 => "uint32",
            Kind::Enum => "enum",
            Kind::Sfixed32 => "sfixed32",
            Kind::Sfixed64 => "sfixed64",
            Kind::Sint32 => "sint32",
            Kind::Sint64 => "sint64",
        }
    }

    /// (smallest, largest) value of an integer kind.
    pub fn range(self) -> (i128, i128) {
        match self {
            Kind::Int32 | Kind::Sint32 | Kind::Enum | Kind::Sfixed32 => (-(1 << 31), (1 << 31) - 1),
            Kind::Uint32 | Kind::Fixed32 => (0, (1 << 32) - 1),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => (i64::MIN as i128, i64::MAX as i128),
            Kind::Uint64 | Kind::Fixed64 => (0, u64::MAX as i128),
            _ => (0, 0),
        }
    }

    pub fn is_64bit(self) -> bool {
        matches!(
            self,
            Kind::Int64 | Kind::Uint64 | Kind::Sint64 | Kind::Fixed64 | Kind::Sfixed64
        )
    }
}

pub struct Field {
    pub name: &'static str,
    pub json_name: &'static str,
    pub number: u32,
    pub kind: Kind,
    pub repeated: bool,
    /// repeated scalars: written packed, read in both forms
    pub packed: bool,
    /// index into MESSAGES when kind is Message
    pub message: usize,
    /// index into ENUMS when kind is Enum
    pub enum_index: usize,
    /// 0: not in a oneof (proto3 `optional` fields sit alone in a synthetic one); else 1 + index
    /// into the message's `oneofs`
    pub oneof: u8,
    /// for HexId fields: what the error message says was expected
    pub id_digits: &'static str,
}

pub struct Message {
    pub full_name: &'static str,
    /// sorted by field number
    pub fields: &'static [Field],
    /// field number -> index into `fields`, 255 for none
    pub by_number: &'static [u8],
    pub oneofs: &'static [&'static str],
}

pub struct Enum {
    pub name: &'static str,
    pub values: &'static [(&'static str, i32)],
}

impl Message {
    pub fn field_by_number(&self, number: u64) -> Option<usize> {
        match self.by_number.get(number as usize) {
            Some(&i) if i != 255 => Some(i as usize),
            _ => None,
        }
    }
}

pub fn message_index(name: &str) -> Option<usize> {
    let full = match name {
        "traces" => "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest",
        "logs" => "opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest",
        "metrics" => "opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest",
        other => other,
    };
    super::tables::MESSAGES
        .iter()
        .position(|m| m.full_name == full)
}
