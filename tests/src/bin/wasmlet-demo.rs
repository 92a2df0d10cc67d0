//! `make demo`: start a private containerd with the freshly built shim on its PATH, build
//! and import an image holding the hello example, and run it with `ctr run --rm`. The
//! containerd is 2.3.4 (of `../shared`) when it is there, else Debian's 1.6.20.

use std::time::Duration;

use wasmlet_tests::containerd::{unavailable_reason, Containerd, Options};
use wasmlet_tests::fixtures::{example, import_image, module_image, require};

const NS: &str = "wasmlet-demo";
const IMAGE: &str = "docker.io/wasmlet/hello:demo";

fn main() {
    // The newest version available: 2.x first.
    let opts = Options::newest_first()
        .into_iter()
        .find(|opts| unavailable_reason(opts).is_none())
        .unwrap_or_else(Options::from_env);
    if let Some(why) = unavailable_reason(&opts) {
        eprintln!("demo cannot run: {why}");
        std::process::exit(2);
    }
    let module = example("wasm32-wasip1", "hello");
    if let Err(e) = require(&module) {
        eprintln!("{e}");
        std::process::exit(2);
    }
    let ctd = Containerd::start(&opts).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    println!(
        "private containerd {} at {}",
        opts.flavour.name,
        ctd.address.display()
    );
    import_image(
        &ctd,
        NS,
        &module_image(IMAGE, std::fs::read(&module).unwrap()),
    );
    println!(
        "imported {IMAGE} ({} bytes of wasm)",
        std::fs::metadata(&module).unwrap().len()
    );

    let mut code = 0;
    for (id, extra) in [
        ("hello", vec![]),
        (
            "hello-args",
            vec![
                "--env",
                "GREETING=containerd",
                IMAGE,
                "hello-args",
                "/app/hello.wasm",
                "from",
                "ctr",
            ],
        ),
    ] {
        let mut args = vec!["run", "--rm", "--runtime", "io.containerd.wasmtime.v1"];
        if extra.is_empty() {
            args.extend([IMAGE, id]);
        } else {
            args.extend(extra);
        }
        println!("\n$ ctr -n {NS} {}", args.join(" "));
        let out = ctd.ctr_timeout(NS, &args, None, Duration::from_secs(60));
        print!("{}", out.stdout_str());
        eprint!("{}", out.stderr);
        println!("(exit code {})", out.code.unwrap_or(-1));
        if out.code != Some(0) {
            code = 1;
        }
    }
    drop(ctd);
    wasmlet_tests::leaks::remove_cgroup_parent(NS);
    std::process::exit(code);
}
