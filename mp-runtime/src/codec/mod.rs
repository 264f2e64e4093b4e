//! The one place that knows the wire format of values.
//!
//! postcard was chosen by measurement (see `docs/codec.md`): lowest cost for the
//! small messages that dominate round trips (22 ns for a `u64` encode+decode,
//! against 96 ns for bitcode's serde mode), on par for bulk sequences, a stable
//! documented format, and careful with untrusted input (sequence lengths never
//! pre-allocate more than the input can hold).

use serde::Serialize;
use serde::de::DeserializeOwned;

mod big;

use self::big::Big;
use crate::buffer::VecOutput;
use crate::error::CodecError;

/// Appends the encoding of `value` to `out`.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), CodecError> {
    let start = out.len();
    postcard::serialize_with_flavor(value, VecOutput { out: &mut *out }).map_err(|e| {
        out.truncate(start);
        CodecError::new(format!(
            "could not serialize a value of type `{}`: {e}",
            std::any::type_name::<T>()
        ))
    })
}

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Decodes a whole buffer; trailing bytes are an error (a sign of a type mismatch).
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_borrowed(bytes)
}

/// Decodes a value that may borrow from `bytes`.
pub(crate) fn decode_borrowed<'a, T: serde::Deserialize<'a>>(
    bytes: &'a [u8],
) -> Result<T, CodecError> {
    let mut deserializer = postcard::Deserializer::from_bytes(bytes);
    let value = T::deserialize(Big(&mut deserializer));
    match value.and_then(|value| Ok((value, deserializer.finalize()?))) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(CodecError::new(format!(
            "{} trailing bytes after a value of type `{}`: sender and receiver disagree on the type",
            rest.len(),
            std::any::type_name::<T>()
        ))),
        Err(e) => Err(CodecError::new(format!(
            "could not deserialize a value of type `{}`: {e} (corrupt data, or sender and receiver disagree on the type)",
            std::any::type_name::<T>()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v: (u64, String, Vec<i32>) = (7, "x".into(), vec![1, -2]);
        let bytes = encode(&v).unwrap();
        let back: (u64, String, Vec<i32>) = decode(&bytes).unwrap();
        assert_eq!(v, back);
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let bytes = encode(&(1u8, 2u8)).unwrap();
        let err = decode::<u8>(&bytes).unwrap_err();
        assert!(err.message().contains("trailing"), "{err}");
    }

    #[test]
    fn corrupt_length_does_not_allocate_or_panic() {
        // A sequence claiming u32::MAX elements with no data behind it.
        let mut bytes = Vec::new();
        encode_into(&u32::MAX, &mut bytes).unwrap();
        let err = decode::<Vec<u64>>(&bytes).unwrap_err();
        assert!(err.message().contains("deserialize"), "{err}");
    }

    /// Every shape of the serde data model, with large byte buffers and
    /// strings in nested positions: what the huge-page pass-through decodes
    /// must equal what plain postcard decodes.
    #[test]
    fn large_buffers_decode_like_plain_postcard() {
        use serde::Deserialize;
        use serde_bytes::ByteBuf;
        use std::collections::BTreeMap;

        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        enum Shape {
            Unit,
            Newtype(ByteBuf),
            Tuple(u8, String),
            Struct { bytes: ByteBuf, text: String },
        }
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Wrapper(Option<ByteBuf>);
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Everything {
            shapes: Vec<Shape>,
            map: BTreeMap<String, ByteBuf>,
            wrapper: Wrapper,
            none: Option<String>,
            small: ByteBuf,
            numbers: (i8, u128, f64, char, bool, ()),
        }
        let big = crate::buffer::HUGE_PAGES_FROM + 3;
        let value = Everything {
            shapes: vec![
                Shape::Unit,
                Shape::Newtype(ByteBuf::from(vec![1u8; big])),
                Shape::Tuple(9, "t".repeat(big)),
                Shape::Struct {
                    bytes: ByteBuf::from(vec![2u8; 10]),
                    text: "s".repeat(big + 1),
                },
            ],
            map: BTreeMap::from([("k".repeat(big), ByteBuf::from(vec![3u8; big]))]),
            wrapper: Wrapper(Some(ByteBuf::from(vec![4u8; big]))),
            none: None,
            small: ByteBuf::from(vec![5u8; 3]),
            numbers: (-3, u128::MAX, 1.5, 'é', true, ()),
        };
        let bytes = encode(&value).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&value).unwrap());
        let plain: Everything = postcard::from_bytes(&bytes).unwrap();
        let ours: Everything = decode(&bytes).unwrap();
        assert_eq!(ours, plain);
        assert_eq!(ours, value);
    }

    #[test]
    fn corrupt_large_string_is_an_error() {
        let mut bytes = encode(&"x".repeat(crate::buffer::HUGE_PAGES_FROM)).unwrap();
        let last = bytes.len() - 1;
        bytes[last] = 0xff;
        let err = decode::<String>(&bytes).unwrap_err();
        assert!(err.message().contains("deserialize"), "{err}");
    }
}
