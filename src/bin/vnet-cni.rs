//! The `vnet-cni` executable: a CNI plugin. Reads CNI_* variables and the network
//! configuration on stdin, prints the result (or the error) as JSON on stdout.

use std::io::Read;

fn main() {
    let mut stdin = Vec::new();
    // VERSION may come without stdin; a closed or empty stdin is fine.
    let _ = std::io::stdin().read_to_end(&mut stdin);
    let out = vnet::cni::run(std::env::vars(), &stdin);
    if let Some(v) = out.stdout {
        println!("{v}");
    }
    std::process::exit(out.exit_code);
}
