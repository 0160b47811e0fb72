//! The `callhook` command.

fn main() {
    println!("callhook {}", env!("CARGO_PKG_VERSION"));
}
