struct Config {
    level: u32,
}

#[mp::job]
fn configure(config: Config) -> u32 {
    config.level
}

fn main() {
    assert_eq!(configure(Config { level: 1 }), 1);
}
