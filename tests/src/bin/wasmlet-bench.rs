//! `make bench`: start-to-exit time of `ctr run --rm` and the memory of the shim process
//! tree, for our Wasmtime shim with the hello example (and with the same static busybox run
//! natively) against runc with a static busybox `echo` (the baseline), measured side by
//! side in one invocation and reported as ratios; `ctr task exec` into running containers
//! against runc's; then requests/s of the `http-hello`
//! component served by the shim against the same component under a bare `wasmtime serve`.

use std::path::Path;
use std::time::{Duration, Instant};

use wasmlet_oci::image::ImageSpec;
use wasmlet_tests::cmd::eventually;
use wasmlet_tests::containerd::{unavailable_reason, Containerd, Options};
use wasmlet_tests::fixtures::{example, import_image, module_image, require, wat};
use wasmlet_tests::leaks::{parent_of, processes, processes_with};

const NS: &str = "wasmlet-bench";
const WASM_IMAGE: &str = "docker.io/wasmlet/hello:bench";
const SLEEP_IMAGE: &str = "docker.io/wasmlet/sleep:bench";
const BUSYBOX_IMAGE: &str = "docker.io/wasmlet/busybox:bench";
const EXEC_IMAGE: &str = "docker.io/wasmlet/exec:bench";

struct Runtime {
    name: &'static str,
    runtime: &'static str,
    image: &'static str,
    shim: &'static str,
}

const OURS: Runtime = Runtime {
    name: "wasmlet (wasmtime) hello.wasm",
    runtime: "io.containerd.wasmtime.v1",
    image: WASM_IMAGE,
    shim: "containerd-shim-wasmtime-v1",
};
const WASMEDGE: Runtime = Runtime {
    name: "wasmlet (wasmedge) hello.wasm",
    runtime: "io.containerd.wasmedge.v1",
    image: WASM_IMAGE,
    shim: "containerd-shim-wasmedge-v1",
};
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

fn runs() -> usize {
    std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}

fn time_run(ctd: &Containerd, rt: &Runtime, id: &str) -> Duration {
    time_run_args(ctd, rt.runtime, rt.image, id, &[])
}

fn time_run_args(
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
fn big_module(ctd: &Containerd) {
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
fn exec_latency(ctd: &Containerd, hello: &[u8]) {
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

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// (RSS, PSS) in KiB of `pid` and all of its descendants.
fn tree_memory(pid: u32) -> (u64, u64, usize) {
    let all: Vec<u32> = processes().into_iter().map(|(p, _)| p).collect();
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            all.iter()
                .copied()
                .filter(|p| parent_of(*p) == Some(parent)),
        );
        i += 1;
    }
    let field = |file: &str, key: &str, p: u32| -> u64 {
        std::fs::read_to_string(format!("/proc/{p}/{file}"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let rss = tree.iter().map(|p| field("status", "VmRSS:", *p)).sum();
    let pss = tree.iter().map(|p| field("smaps_rollup", "Pss:", *p)).sum();
    (rss, pss, tree.len())
}

fn idle_memory(ctd: &Containerd, rt: &Runtime, image: &str, args: &[&str]) -> (u64, u64, usize) {
    let slug: Vec<&str> = rt
        .name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let id = format!("mem-{}", slug.join("-"));
    let mut cmd = vec!["run", "-d", "--runtime", rt.runtime, image, &id];
    cmd.extend_from_slice(args);
    ctd.ctr(NS, &cmd).ok("ctr run -d");
    let needle = format!("-id {id} ");
    let address = ctd.address.to_string_lossy().into_owned();
    let mut shim = None;
    eventually(Duration::from_secs(10), || {
        shim = processes_with(&[rt.shim, &needle, &address])
            .first()
            .map(|p| p.0);
        shim.is_some()
    });
    std::thread::sleep(Duration::from_millis(500));
    // Look again: the first match may have been the short-lived `start` invocation.
    let shim = processes_with(&[rt.shim, &needle, &address])
        .into_iter()
        .find(|(_, cmd)| !cmd.contains(" start"))
        .map(|p| p.0)
        .or(shim);
    let shim = shim.unwrap_or_else(|| {
        panic!(
            "no {} process for {id}: {:?}",
            rt.shim,
            processes_with(&[rt.shim])
        )
    });
    let mem = tree_memory(shim);

    ctd.ctr(NS, &["task", "kill", "-s", "SIGKILL", &id])
        .ok("kill");
    eventually(Duration::from_secs(10), || {
        ctd.ctr(NS, &["task", "delete", &id]).code == Some(0)
    });
    ctd.ctr(NS, &["container", "rm", &id]).ok("rm");
    mem
}

fn main() {
    let opts = Options::from_env();
    if let Some(why) = unavailable_reason(&opts) {
        eprintln!("bench cannot run: {why}");
        std::process::exit(2);
    }
    let module = example("wasm32-wasip1", "hello");
    require(&module).unwrap_or_else(|e| panic!("{e}"));
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox missing: apt-get install busybox-static"
    );

    let ctd = Containerd::start(&opts).unwrap_or_else(|e| panic!("{e}"));
    import_image(
        &ctd,
        NS,
        &module_image(WASM_IMAGE, std::fs::read(&module).unwrap()),
    );
    import_image(&ctd, NS, &module_image(SLEEP_IMAGE, wat("sleep")));
    let mut bb =
        ImageSpec::new(BUSYBOX_IMAGE).file("/bin/busybox", std::fs::read(busybox).unwrap(), 0o755);
    bb.entrypoint = vec!["/bin/busybox".into(), "echo".into(), "hello".into()];
    import_image(&ctd, NS, &bb);

    let n = runs();
    println!("wasmlet bench: {n} runs each of `ctr run --rm`, alternating, after warm-up\n");
    let first = time_run(&ctd, &OURS, "cold-0");
    for i in 0..3 {
        time_run(&ctd, &OURS, &format!("warm-w{i}"));
        time_run(&ctd, &RUNC, &format!("warm-r{i}"));
        time_run(&ctd, &NATIVE, &format!("warm-n{i}"));
    }
    let wasmedge = opts.shim_dir.join(WASMEDGE.shim).exists();
    if wasmedge {
        time_run(&ctd, &WASMEDGE, "warm-e");
    }
    let (mut ours, mut runc, mut edge, mut native) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        ours.push(time_run(&ctd, &OURS, &format!("w{i}")));
        runc.push(time_run(&ctd, &RUNC, &format!("r{i}")));
        native.push(time_run(&ctd, &NATIVE, &format!("n{i}")));
        if wasmedge {
            edge.push(time_run(&ctd, &WASMEDGE, &format!("e{i}")));
        }
    }
    let mr = median(runc.clone());
    println!("start-to-exit (ms)                median     p90   vs runc");
    let row = |name: &str, v: Vec<Duration>| {
        let m = median(v.clone());
        println!(
            "  {:<30} {:>7.1} {:>7.1}   {:.2}x",
            name,
            ms(m),
            ms(percentile(v, 0.9)),
            m.as_secs_f64() / mr.as_secs_f64()
        );
    };
    row(RUNC.name, runc);
    row(OURS.name, ours);
    if wasmedge {
        row(WASMEDGE.name, edge);
    }
    row(NATIVE.name, native);
    println!(
        "  first start of hello.wasm under wasmtime (compile + cache): {:.1} ms",
        ms(first)
    );

    exec_latency(&ctd, &std::fs::read(&module).unwrap());
    big_module(&ctd);

    let (ro, po, no) = idle_memory(&ctd, &OURS, SLEEP_IMAGE, &[]);
    let (rr, pr, nr) = idle_memory(
        &ctd,
        &RUNC,
        BUSYBOX_IMAGE,
        &["/bin/busybox", "sleep", "300"],
    );
    let edge_mem = wasmedge.then(|| idle_memory(&ctd, &WASMEDGE, SLEEP_IMAGE, &[]));
    let (rn, pn, nn) = idle_memory(
        &ctd,
        &NATIVE,
        BUSYBOX_IMAGE,
        &["/bin/busybox", "sleep", "300"],
    );
    println!("\nshim process tree while the workload sleeps (KiB)   RSS      PSS  processes");
    println!(
        "  {:<44} {:>7} {:>8} {:>4}",
        "runc: shim + busybox sleep", rr, pr, nr
    );
    println!(
        "  {:<44} {:>7} {:>8} {:>4}",
        "wasmlet: shim + sleep.wasm", ro, po, no
    );
    if let Some((re, pe, ne)) = edge_mem {
        println!(
            "  {:<44} {:>7} {:>8} {:>4}",
            "wasmlet (wasmedge): shim + sleep.wasm", re, pe, ne
        );
        println!(
            "  ratio wasmlet (wasmedge) / runc: RSS {:.2}x, PSS {:.2}x",
            re as f64 / rr as f64,
            pe as f64 / pr as f64
        );
    }
    println!(
        "  {:<44} {:>7} {:>8} {:>4}",
        "wasmlet: shim + native busybox sleep", rn, pn, nn
    );
    println!(
        "  ratio wasmlet (wasmtime) / runc: RSS {:.2}x, PSS {:.2}x",
        ro as f64 / rr as f64,
        po as f64 / pr as f64
    );
    println!(
        "  ratio wasmlet native / runc: RSS {:.2}x, PSS {:.2}x",
        rn as f64 / rr as f64,
        pn as f64 / pr as f64
    );
    http_throughput(&ctd);
    drop(ctd);
    wasmlet_tests::leaks::remove_cgroup_parent(NS);
}

/// Requests/s of `http-hello` served by the shim (in its container, on the host network)
/// and by `wasmtime serve` of the same Wasmtime version, alternating rounds of keep-alive
/// load on the same client; the ratio of the medians.
fn http_throughput(ctd: &Containerd) {
    use wasmlet_tests::http::{free_port, load, serve_image, wait_serving, Load};
    let wasmtime = std::env::var_os("BENCH_WASMTIME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| wasmlet_tests::target_dir().join("bench/bin/wasmtime"));
    let component = example("wasm32-wasip2", "http_hello");
    if !wasmtime.exists() || !component.exists() {
        println!(
            "\nHTTP: {} or {} missing (make bench builds them)",
            wasmtime.display(),
            component.display()
        );
        return;
    }
    let image = "docker.io/wasmlet/http-hello:bench";
    import_image(
        ctd,
        NS,
        &module_image(image, std::fs::read(&component).unwrap()),
    );
    let ours = serve_image(ctd, NS, OURS.runtime, image, "web");
    let bare: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut serve = std::process::Command::new(&wasmtime)
        .args(["serve", "-Scli", "--addr", &bare.to_string()])
        .arg(&component)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("wasmtime serve");
    assert!(
        wait_serving(bare),
        "wasmtime serve does not serve http://{bare}/"
    );
    let connections = std::env::var("BENCH_HTTP_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let round = Duration::from_secs(5);
    load(ours, "/", connections, Duration::from_secs(2));
    load(bare, "/", connections, Duration::from_secs(2));
    let (mut a, mut b): (Vec<Load>, Vec<Load>) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        a.push(load(ours, "/", connections, round));
        b.push(load(bare, "/", connections, round));
    }
    let mut web_shim = processes_with(&[OURS.shim, "-id web ", &ctd.address.to_string_lossy()]);
    web_shim.retain(|(_, cmd)| !cmd.contains(" start"));
    let (rss_ours, _, _) = web_shim
        .first()
        .map(|p| tree_memory(p.0))
        .unwrap_or_default();
    let (rss_bare, _, _) = tree_memory(serve.id());
    let _ = serve.kill();
    let _ = serve.wait();
    ctd.ctr(NS, &["task", "kill", "web"]).ok("kill web");
    eventually(Duration::from_secs(10), || {
        ctd.ctr(NS, &["task", "delete", "web"]).code == Some(0)
    });
    ctd.ctr(NS, &["container", "rm", "web"]).ok("rm web");

    let med = |v: &[Load]| {
        let mut r: Vec<f64> = v.iter().map(Load::per_second).collect();
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    };
    let (ra, rb) = (med(&a), med(&b));
    println!(
        "\nHTTP, http-hello (wasi:http/proxy, one instance per request), {connections} keep-alive connections, 3 x {} s each, alternating",
        round.as_secs()
    );
    println!(
        "                                   req/s    p50 ms   p99 ms  errors  RSS KiB (after)"
    );
    for (name, runs, rate, rss) in [
        ("wasmtime serve -Scli (48.0.8)", &b, rb, rss_bare),
        ("wasmlet (wasmtime), in container", &a, ra, rss_ours),
    ] {
        let last = runs.last().expect("rounds ran");
        println!(
            "  {:<32} {:>8.0} {:>8.2} {:>8.2} {:>7} {:>8}",
            name,
            rate,
            ms(last.latency(0.5)),
            ms(last.latency(0.99)),
            runs.iter().map(|l| l.errors).sum::<u64>(),
            rss
        );
    }
    println!(
        "  ratio wasmlet / wasmtime serve: {:.2}x requests/s",
        ra / rb
    );
}
