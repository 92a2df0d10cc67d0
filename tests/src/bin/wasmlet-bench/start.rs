//! Times: `ctr run --rm` start-to-exit per runtime, alternating, against runc; the first
//! and cached starts of a large module; `ctr task exec` into running containers.

use std::time::{Duration, Instant};

use wasmlet_oci::image::ImageSpec;
use wasmlet_tests::cmd::eventually;
use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::fixtures::{import_image, module_image, wat};

use crate::{runs, Runtime, BUSYBOX_IMAGE, EXEC_IMAGE, NATIVE, NS, OURS, RUNC};

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
    let mut cmd = vec!["run", "--rm", "--runtime", runtime, image, id];
    cmd.extend_from_slice(args);
    let start = Instant::now();
    let out = ctd.ctr_timeout(NS, &cmd, None, Duration::from_secs(120));
    let took = start.elapsed();
    assert_eq!(out.code, Some(0), "{image} failed: {}", out.stderr);
    took
}

/// First (compiling) and second (cached) start of a large module from an ordinary image.
pub fn big_module(ctd: &Containerd) {
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
    let args = ["/app/wasm-tools.wasm", "--version"];
    let first = time_run_args(ctd, OURS.runtime, image, "big-first", &args);
    let mut again: Vec<Duration> = (0..5)
        .map(|i| time_run_args(ctd, OURS.runtime, image, &format!("big-{i}"), &args))
        .collect();
    again.sort();
    let second = again[again.len() / 2];
    println!(
        "\nlarge module ({:.1} MB, {}), ordinary rootfs image",
        bytes.len() as f64 / 1e6,
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    println!("  first start (compile + cache): {:>8.1} ms", ms(first));
    println!("  later starts (cached), median: {:>8.1} ms", ms(second));
    println!(
        "  ratio later / first: {:.3}x",
        second.as_secs_f64() / first.as_secs_f64()
    );
}

/// `ctr task exec` of a short program into a running container, alternating: busybox
/// `true` in runc's and in wasmlet's native busybox container, `hello.wasm` in a wasm
/// container (the module's first exec compiles it into the cache; warm-up covers that).
pub fn exec_latency(ctd: &Containerd, hello: &[u8]) {
    let mut image = ImageSpec::new(EXEC_IMAGE)
        .file("/app/sleep.wasm", wat("sleep"), 0o755)
        .file("/app/hello.wasm", hello.to_vec(), 0o755);
    image.entrypoint = vec!["/app/sleep.wasm".into()];
    import_image(ctd, NS, &image);
    let sleep: &[&str] = &["/bin/busybox", "sleep", "300"];
    let truth: &[&str] = &["/bin/busybox", "true"];
    type Target<'a> = (&'a str, &'a str, &'a str, &'a [&'a str], &'a [&'a str]);
    let targets: [Target; 3] = [
        (
            "runc: busybox true",
            RUNC.runtime,
            BUSYBOX_IMAGE,
            sleep,
            truth,
        ),
        (
            "wasmlet native: busybox true",
            NATIVE.runtime,
            BUSYBOX_IMAGE,
            sleep,
            truth,
        ),
        (
            "wasmlet (wasmtime): hello.wasm",
            OURS.runtime,
            EXEC_IMAGE,
            &[],
            &["/app/hello.wasm"],
        ),
    ];
    for (i, (_, runtime, image, args, _)) in targets.iter().enumerate() {
        let id = format!("exec-{i}");
        let mut cmd = vec!["run", "-d", "--runtime", *runtime, *image, &id];
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
