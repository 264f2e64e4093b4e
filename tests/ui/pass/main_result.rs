#[mp::job]
fn square(x: u64) -> u64 {
    x * x
}

mp::main! {
    fn main() -> Result<(), std::io::Error> {
        // A worker re-executed from this binary never gets here.
        assert!(!mp::current_process().is_worker());
        let p = mp::Process::spawn(square, (7,)).map_err(std::io::Error::other)?;
        assert_eq!(p.join().map_err(std::io::Error::other)?, 49);
        Ok(())
    }
}
