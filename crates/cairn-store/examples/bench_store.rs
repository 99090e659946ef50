//! Storage benchmark (the same as `cairn bench store`): see `cairn_store::bench`.
//!
//! `cargo run --release -p cairn-store --example bench_store [-- --dir DIR] [--seconds N]`
//!
//! DIR (default: a new temporary dir) should be on the disk to measure; the
//! temporary dir is removed at the end.

use std::path::PathBuf;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut dir: Option<PathBuf> = None;
    let mut seconds = 3.0f64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dir" => dir = args.next().map(PathBuf::from),
            "--seconds" => seconds = args.next().and_then(|s| s.parse().ok()).unwrap_or(seconds),
            _ => {
                eprintln!("usage: bench_store [--dir DIR] [--seconds N]");
                std::process::exit(2);
            }
        }
    }
    let base = match &dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            tempfile::tempdir_in(dir)?
        }
        None => tempfile::tempdir()?,
    };
    cairn_store::bench::run(
        base.path(),
        Duration::from_secs_f64(seconds),
        &mut std::io::stdout(),
    )
}
