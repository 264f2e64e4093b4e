// `Value` and `Array` only take `Pod` types.

fn main() {
    let _ = mp::Value::new(String::from("no"));
    let _ = mp::Array::from_slice(&[&1u8]);
}
