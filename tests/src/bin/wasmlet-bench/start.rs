//! Times: `ctr run --rm` start-to-exit per runtime, alternating, against runc; per engine,
//! the first and cached starts of a large module and a CPU-bound run of it; `ctr task exec`
//! into running containers.

use std::time::{Duration, Instant};

use wasmlet_oci::image::ImageSpec;
use wasmlet_tests::cmd::eventually;
use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::fixtures::{import_image, module_image, wat};

use crate::{engine_of, runs, Runtime, BUSYBOX_IMAGE, EXEC_IMAGE, NATIVE, NS, RUNC};

/// Start-to-exit medians of `runtimes` (runc first, the baseline), `runs()` alternating
/// rounds after warm-up; prints the table and returns (name, median) per runtime.
pub fn start_to_exit(ctd: &Containerd, runtimes: &[&Runtime]) -> Vec<(&'static str, Duration)> {
    let n = runs();
    for i in 0..3 {
        for (k, rt) in runtimes.iter().enumerate() {
            time_run(ctd, rt, &format!("warm-{k}-{i}"));
        }
    }
    let mut times = vec![Vec::new(); runtimes.len()];
    for i in 0..n {
        for (k, rt) in runtimes.iter().enumerate() {
            times[k].push(time_run(ctd, rt, &format!("run-{k}-{i}")));
        }
    }
    let baseline = median(times[0].clone());
    println!("start-to-exit, {n} runs each (ms)  median     p90   vs runc");
    let mut medians = Vec::new();
    for (rt, t) in runtimes.iter().zip(times) {
        let m = median(t.clone());
        println!(
            "  {:<30} {:>7.1} {:>7.1}   {:.2}x",
            rt.name,
            ms(m),
            ms(percentile(t, 0.9)),
            m.as_secs_f64() / baseline.as_secs_f64()
        );
        medians.push((rt.name, m));
    }
    medians
}

pub fn time_run(ctd: &Containerd, rt: &Runtime, id: &str) -> Duration {
    time_run_args(ctd, rt.runtime, rt.image, id, &[])
}

pub fn time_run_args(
    ctd: &Containerd,
    runtime: &str,
    image: &str,
    id: &str,
    args: &[&str],
) -> Duration {
    try_time_run(ctd, runtime, image, id, args, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{image} failed: {e}"))
}

/// The time `ctr run --rm` took, or why it failed (within `limit`).
pub fn try_time_run(
    ctd: &Containerd,
    runtime: &str,
    image: &str,
    id: &str,
    args: &[&str],
    limit: Duration,
) -> Result<Duration, String> {
    let mut cmd = vec!["run", "--rm", "--runtime", runtime, image, id];
    cmd.extend_from_slice(args);
    let start = Instant::now();
    let out = ctd.ctr_timeout(NS, &cmd, None, limit);
    let took = start.elapsed();
    match out.code {
        Some(0) => Ok(took),
        _ => {
            // Leave nothing behind for the next run (a timed-out task is still there).
            let _ = ctd.ctr(NS, &["task", "kill", "-s", "SIGKILL", id]);
            eventually(Duration::from_secs(10), || {
                let _ = ctd.ctr(NS, &["task", "delete", id]);
                ctd.ctr(NS, &["task", "ls", "-q"])
                    .stdout_str()
                    .lines()
                    .all(|l| l != id)
            });
            let _ = ctd.ctr(NS, &["container", "rm", id]);
            Err(format!(
                "{} after {:.1} s",
                out.stderr.trim(),
                took.as_secs_f64()
            ))
        }
    }
}

/// Per engine, the first (compiling) and later (cached) starts of a large module from an
/// ordinary image, then a CPU-bound run of it: the module validating itself (15 MB of
/// WebAssembly parsed and type-checked), which shows each engine's compiled or interpreted
/// speed.
pub fn big_module(ctd: &Containerd, engines: &[&Runtime]) {
    let path = std::env::var_os("BENCH_BIG_MODULE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| wasmlet_tests::target_dir().join("bench/bin/wasm-tools.wasm"));
    let Ok(bytes) = std::fs::read(&path) else {
        println!(
            "\nlarge module: {} missing (make bench builds it)",
            path.display()
        );
        return;
    };
    let image = "docker.io/wasmlet/wasm-tools:bench";
    import_image(ctd, NS, &module_image(image, bytes.clone()));
    let version = ["/app/wasm-tools.wasm", "--version"];
    let work = ["/app/wasm-tools.wasm", "validate", "/app/wasm-tools.wasm"];
    println!(
        "\nlarge module ({:.1} MB, {}), ordinary rootfs image (ms)",
        bytes.len() as f64 / 1e6,
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    println!(
        "  {:<12} {:>14} {:>14} {:>14} {:>16}",
        "engine", "first start", "cached start", "later/first", "validate itself"
    );
    let limit = Duration::from_secs(900);
    let mut baseline = None;
    // BENCH_BIG_SKIP="wasmedge ...": engines left out of this table (WasmEdge's LLVM AOT
    // compile of 15 MB takes minutes on a small machine).
    let skip = std::env::var("BENCH_BIG_SKIP").unwrap_or_default();
    for engine in engines {
        let name = engine_of(engine);
        if skip.split_whitespace().any(|s| s == name) {
            println!("  {name:<12} (left out: BENCH_BIG_SKIP)");
            continue;
        }
        let first = try_time_run(
            ctd,
            engine.runtime,
            image,
            &format!("big-first-{name}"),
            &version,
            limit,
        );
        let again: Result<Vec<Duration>, String> = (0..5)
            .map(|i| {
                try_time_run(
                    ctd,
                    engine.runtime,
                    image,
                    &format!("big-{name}-{i}"),
                    &version,
                    limit,
                )
            })
            .collect();
        let cpu = try_time_run(
            ctd,
            engine.runtime,
            image,
            &format!("big-cpu-{name}"),
            &work,
            limit,
        );
        let cell = |r: &Result<Duration, String>| match r {
            Ok(d) => format!("{:.1}", ms(*d)),
            Err(e) => {
                eprintln!("  {name}: {e}");
                "failed".into()
            }
        };
        let cached = again.map(median);
        let ratio = match (&first, &cached) {
            (Ok(f), Ok(c)) => format!("{:.3}x", c.as_secs_f64() / f.as_secs_f64()),
            _ => "-".into(),
        };
        let cpu_cell = match (&cpu, baseline) {
            (Ok(d), Some(b)) => format!("{} ({:.1}x)", cell(&cpu), d.as_secs_f64() / b),
            _ => cell(&cpu),
        };
        if let (Ok(d), None) = (&cpu, baseline) {
            baseline = Some(d.as_secs_f64());
        }
        println!(
            "  {name:<12} {:>14} {:>14} {:>14} {:>16}",
            cell(&first),
            cell(&cached),
            ratio,
            cpu_cell
        );
    }
    println!("  (validate itself: the ratio is to the first engine's, Wasmtime's)");
}

/// `ctr task exec` of a short program into a running container, alternating: busybox
/// `true` in runc's and in wasmlet's native busybox container, `hello.wasm` in a wasm
/// container (the module's first exec compiles it into the cache; warm-up covers that).
pub fn exec_latency(ctd: &Containerd, hello: &[u8], engines: &[&Runtime]) {
    let mut image = ImageSpec::new(EXEC_IMAGE)
        .file("/app/sleep.wasm", wat("sleep"), 0o755)
        .file("/app/hello.wasm", hello.to_vec(), 0o755);
    image.entrypoint = vec!["/app/sleep.wasm".into()];
    import_image(ctd, NS, &image);
    let sleep: &[&str] = &["/bin/busybox", "sleep", "300"];
    let truth: &[&str] = &["/bin/busybox", "true"];
    type Target<'a> = (String, &'a str, &'a str, &'a [&'a str], &'a [&'a str]);
    let mut targets: Vec<Target> = vec![
        (
            "runc: busybox true".into(),
            RUNC.runtime,
            BUSYBOX_IMAGE,
            sleep,
            truth,
        ),
        (
            "wasmlet native: busybox true".into(),
            NATIVE.runtime,
            BUSYBOX_IMAGE,
            sleep,
            truth,
        ),
    ];
    for engine in engines {
        targets.push((
            format!("wasmlet ({}): hello.wasm", engine_of(engine)),
            engine.runtime,
            EXEC_IMAGE,
            &[],
            &["/app/hello.wasm"],
        ));
    }
    for (i, (_, runtime, image, args, _)) in targets.iter().enumerate() {
        let id = format!("exec-{i}");
        let mut cmd = vec!["run", "-d", "--runtime", runtime, image, &id];
        cmd.extend_from_slice(args);
        ctd.ctr(NS, &cmd).ok("ctr run -d");
    }
    let time_exec = |i: usize, exec_id: &str| {
        let id = format!("exec-{i}");
        let mut cmd = vec!["task", "exec", "--exec-id", exec_id, &id];
        cmd.extend_from_slice(targets[i].4);
        let start = Instant::now();
        let out = ctd.ctr_timeout(NS, &cmd, None, Duration::from_secs(60));
        let took = start.elapsed();
        assert_eq!(out.code, Some(0), "exec into {id}: {}", out.stderr);
        took
    };
    let mut times = vec![Vec::new(); targets.len()];
    for round in 0..runs() + 2 {
        for (i, t) in times.iter_mut().enumerate() {
            let took = time_exec(i, &format!("x{round}"));
            if round >= 2 {
                t.push(took);
            }
        }
    }
    let baseline = median(times[0].clone());
    println!(
        "
`ctr task exec` into a running container (ms)    median     p90   vs runc"
    );
    for (target, t) in targets.iter().zip(times) {
        let m = median(t.clone());
        println!(
            "  {:<44} {:>7.1} {:>7.1}   {:.2}x",
            target.0,
            ms(m),
            ms(percentile(t, 0.9)),
            m.as_secs_f64() / baseline.as_secs_f64()
        );
    }
    for i in 0..targets.len() {
        let id = format!("exec-{i}");
        ctd.ctr(NS, &["task", "kill", "-s", "SIGKILL", &id])
            .ok("kill");
        eventually(Duration::from_secs(10), || {
            ctd.ctr(NS, &["task", "delete", &id]).code == Some(0)
        });
        ctd.ctr(NS, &["container", "rm", &id]).ok("rm");
    }
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
