//! The demo workload: greets, then echoes its arguments and `GREETING` from the environment.
//! Built for `wasm32-wasip1` and packed into an image by `make demo`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let who = std::env::var("GREETING").unwrap_or_else(|_| "wasmlet".to_string());
    println!("Hello from WebAssembly, {who}!");
    if !args.is_empty() {
        println!("args: {}", args.join(" "));
    }
}
