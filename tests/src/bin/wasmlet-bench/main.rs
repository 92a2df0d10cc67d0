//! `make bench`: start-to-exit time of `ctr run --rm` and the memory of the shim process
//! tree, for our shims with the hello example (and with the same static busybox run
//! natively) against runc with a static busybox `echo` (the baseline), measured side by
//! side in one invocation and reported as ratios; `ctr task exec` into running containers
//! against runc's; the first and cached starts of a large module; then requests/s of the
//! `http-hello` component served by the shim against the same component under a bare
//! `wasmtime serve`; pulling from a registry then running, against busybox and a native
//! build of the same program under runc. Everything runs on containerd 2.3.4 (of `../shared`) when it is there,
//! the version users run; Debian's 1.6.20 then gives a second column of start times and
//! memory (and everything, when it is the only one).

mod http;
mod memory;
mod pull;
mod pull_cri;
mod start;

use std::path::Path;
use std::time::Duration;

use wasmlet_oci::image::ImageSpec;
use wasmlet_tests::containerd::{unavailable_reason, Containerd, Flavour, Options};
use wasmlet_tests::fixtures::{example, import_image, module_image, require, wat};

const NS: &str = "wasmlet-bench";
const WASM_IMAGE: &str = "docker.io/wasmlet/hello:bench";
const SLEEP_IMAGE: &str = "docker.io/wasmlet/sleep:bench";
const BUSYBOX_IMAGE: &str = "docker.io/wasmlet/busybox:bench";
const EXEC_IMAGE: &str = "docker.io/wasmlet/exec:bench";

#[derive(Clone, Copy)]
pub struct Runtime {
    pub name: &'static str,
    pub runtime: &'static str,
    pub image: &'static str,
    pub shim: &'static str,
}

/// Every engine's shim, Wasmtime first; the bench measures those that are built.
const ENGINES: [Runtime; 4] = [
    Runtime {
        name: "wasmlet (wasmtime) hello.wasm",
        runtime: "io.containerd.wasmtime.v1",
        image: WASM_IMAGE,
        shim: "containerd-shim-wasmtime-v1",
    },
    Runtime {
        name: "wasmlet (wasmer) hello.wasm",
        runtime: "io.containerd.wasmer.v1",
        image: WASM_IMAGE,
        shim: "containerd-shim-wasmer-v1",
    },
    Runtime {
        name: "wasmlet (wamr) hello.wasm",
        runtime: "io.containerd.wamr.v1",
        image: WASM_IMAGE,
        shim: "containerd-shim-wamr-v1",
    },
    Runtime {
        name: "wasmlet (wasmedge) hello.wasm",
        runtime: "io.containerd.wasmedge.v1",
        image: WASM_IMAGE,
        shim: "containerd-shim-wasmedge-v1",
    },
];
const OURS: Runtime = ENGINES[0];
const NATIVE: Runtime = Runtime {
    name: "wasmlet native busybox echo",
    runtime: "io.containerd.wasmtime.v1",
    image: BUSYBOX_IMAGE,
    shim: "containerd-shim-wasmtime-v1",
};
const RUNC: Runtime = Runtime {
    name: "runc busybox echo",
    runtime: "io.containerd.runc.v2",
    image: BUSYBOX_IMAGE,
    shim: "containerd-shim-runc-v2",
};

/// What one containerd version measured, for the closing comparison: sections of rows of
/// (name, ratio to runc's row, the first).
struct Column {
    version: String,
    sections: Vec<(&'static str, Vec<(&'static str, f64)>)>,
}

/// Each row's value over the first row's.
fn ratios<T: Copy>(rows: &[(&'static str, T)], value: fn(T) -> f64) -> Vec<(&'static str, f64)> {
    let base = value(rows[0].1);
    rows.iter().map(|(n, v)| (*n, value(*v) / base)).collect()
}

/// containerd's own version line (`containerd --version`).
fn version_of(flavour: &Flavour) -> String {
    let out = std::process::Command::new(flavour.containerd())
        .arg("--version")
        .output();
    out.ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().nth(2).map(str::to_string))
        .unwrap_or_else(|| flavour.name.to_string())
}

fn main() {
    // containerd 2.x first: the full set there; start and memory again on the other.
    let versions: Vec<Options> = Options::newest_first()
        .into_iter()
        .filter(|opts| match unavailable_reason(opts) {
            None => true,
            Some(why) => {
                println!("(containerd {} left out: {why})", opts.flavour.name);
                false
            }
        })
        .collect();
    if versions.is_empty() {
        eprintln!("bench cannot run: no containerd version available (see above)");
        std::process::exit(2);
    }
    let module = example("wasm32-wasip1", "hello");
    require(&module).unwrap_or_else(|e| panic!("{e}"));
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox missing: apt-get install busybox-static"
    );
    let hello = std::fs::read(&module).unwrap();

    let mut columns = Vec::new();
    for (i, opts) in versions.iter().enumerate() {
        let primary = i == 0;
        let version = version_of(&opts.flavour);
        println!("\n=== containerd {version} ===\n");
        let ctd = Containerd::start(opts).unwrap_or_else(|e| panic!("{e}"));
        import_image(&ctd, NS, &module_image(WASM_IMAGE, hello.clone()));
        import_image(&ctd, NS, &module_image(SLEEP_IMAGE, wat("sleep")));
        let mut bb = ImageSpec::new(BUSYBOX_IMAGE).file(
            "/bin/busybox",
            std::fs::read(busybox).unwrap(),
            0o755,
        );
        bb.entrypoint = vec!["/bin/busybox".into(), "echo".into(), "hello".into()];
        import_image(&ctd, NS, &bb);

        let engines: Vec<&Runtime> = ENGINES
            .iter()
            .filter(|e| opts.shim_dir.join(e.shim).exists())
            .collect();
        if !section("start") {
            // Only some sections asked for (BENCH_SECTIONS): those run on the primary version.
            if primary {
                if section("http") {
                    http::http_throughput(&ctd);
                }
                if section("pull") {
                    pull::pull_to_exit(&ctd, opts, &hello, busybox);
                }
            }
            drop(ctd);
            wasmlet_tests::leaks::remove_cgroup_parent(NS);
            continue;
        }
        let firsts: Vec<(&str, Duration)> = engines
            .iter()
            .map(|e| {
                (
                    engine_of(e),
                    start::time_run(&ctd, e, &format!("cold-{}", engine_of(e))),
                )
            })
            .collect();
        let mut runtimes = vec![&RUNC];
        runtimes.extend(engines.iter().copied());
        runtimes.push(&NATIVE);
        let start = start::start_to_exit(&ctd, &runtimes);
        for (engine, first) in &firsts {
            println!(
                "  first start of hello.wasm under {engine} (compile + cache): {:.1} ms",
                start::ms(*first)
            );
        }
        if primary {
            start::exec_latency(&ctd, &hello, &engines);
            start::big_module(&ctd, &engines);
        }
        let pss = memory::idle_table(&ctd, &engines);
        if primary && section("http") {
            http::http_throughput(&ctd);
        }
        if primary && section("pull") {
            pull::pull_to_exit(&ctd, opts, &hello, busybox);
        }
        drop(ctd);
        wasmlet_tests::leaks::remove_cgroup_parent(NS);
        columns.push(Column {
            version,
            sections: vec![
                (
                    "start-to-exit, median",
                    ratios(&start, |d: Duration| d.as_secs_f64()),
                ),
                (
                    "shim tree PSS while sleeping",
                    ratios(&pss, |kib: u64| kib as f64),
                ),
            ],
        });
    }
    compare(&columns);
}

/// The ratios to runc of each containerd version, side by side.
fn compare(columns: &[Column]) {
    if columns.len() < 2 {
        return;
    }
    let head: Vec<String> = columns
        .iter()
        .map(|c| {
            format!(
                "{:>22}",
                format!("containerd {}", c.version.trim_start_matches('v'))
            )
        })
        .collect();
    println!("\n=== vs runc on the same containerd ===\n");
    for (section, (title, rows)) in columns[0].sections.iter().enumerate() {
        println!("  {title:<44}{}", head.join(""));
        for (row, (name, _)) in rows.iter().enumerate() {
            let cells: Vec<String> = columns
                .iter()
                .map(|c| format!("{:>22}", format!("{:.2}x", c.sections[section].1[row].1)))
                .collect();
            println!("  {name:<44}{}", cells.join(""));
        }
    }
}

/// The engine a runtime of [`ENGINES`] runs (`wasmtime`, ...).
pub fn engine_of(rt: &Runtime) -> &'static str {
    rt.runtime
        .trim_start_matches("io.containerd.")
        .trim_end_matches(".v1")
}

/// Whether `name` (start, http, pull) is among the sections `BENCH_SECTIONS` asks for
/// (comma-separated; all when unset). `start` is start-to-exit, exec, the big module and
/// memory, on every version; `http` and `pull` run on the primary version.
fn section(name: &str) -> bool {
    match std::env::var("BENCH_SECTIONS") {
        Ok(v) if !v.trim().is_empty() => v.split(',').any(|s| s.trim() == name),
        _ => true,
    }
}

pub fn runs() -> usize {
    std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}
