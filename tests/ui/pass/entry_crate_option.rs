#[mp::entry(crate = "::mp")]
fn main() -> Result<(), mp::Error> {
    Ok(())
}
