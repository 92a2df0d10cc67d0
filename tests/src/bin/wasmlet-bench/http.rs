//! HTTP: requests/s of the `http-hello` component served by the shim against the same
//! component under a bare `wasmtime serve`, and of the `wagi-hello` WAGI module (a plain
//! WASI program run once per request) served by the shim.

use std::time::Duration;

use wasmlet_tests::cmd::eventually;
use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::fixtures::{example, import_image, module_image};
use wasmlet_tests::leaks::processes_with;

use crate::memory::tree_memory;
use crate::start::ms;
use crate::{NS, OURS};

/// Requests/s of `http-hello` served by the shim (in its container, on the host network)
/// and by `wasmtime serve` of the same Wasmtime version, alternating rounds of keep-alive
/// load on the same client; the ratio of the medians.
pub fn http_throughput(ctd: &Containerd) {
    use wasmlet_tests::http::{free_port, load, serve_image, serve_image_with, wait_serving, Load};
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
    let wagi_module = example("wasm32-wasip1", "wagi-hello");
    let wagi = wagi_module.exists().then(|| {
        let image = "docker.io/wasmlet/wagi-hello:bench";
        import_image(
            ctd,
            NS,
            &module_image(image, std::fs::read(&wagi_module).unwrap()),
        );
        let env = ["WASMLET_HTTP_EXECUTOR=wagi"];
        serve_image_with(ctd, NS, OURS.runtime, image, "wagi", &env)
    });
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
    if let Some(wagi) = wagi {
        load(wagi, "/", connections, Duration::from_secs(2));
    }
    let (mut a, mut b, mut c): (Vec<Load>, Vec<Load>, Vec<Load>) = Default::default();
    for _ in 0..3 {
        a.push(load(ours, "/", connections, round));
        b.push(load(bare, "/", connections, round));
        if let Some(wagi) = wagi {
            c.push(load(wagi, "/", connections, round));
        }
    }
    let rss_ours = shim_tree_memory(ctd, "web");
    let (rss_bare, _, _) = tree_memory(serve.id());
    let rss_wagi = shim_tree_memory(ctd, "wagi");
    let _ = serve.kill();
    let _ = serve.wait();
    for id in ["web", "wagi"]
        .into_iter()
        .take(1 + usize::from(wagi.is_some()))
    {
        ctd.ctr(NS, &["task", "kill", id]).ok("kill");
        eventually(Duration::from_secs(10), || {
            ctd.ctr(NS, &["task", "delete", id]).code == Some(0)
        });
        ctd.ctr(NS, &["container", "rm", id]).ok("rm");
    }

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
    let mut rows = vec![
        ("wasmtime serve -Scli (48.0.8)", &b, rb, rss_bare),
        ("wasmlet (wasmtime), in container", &a, ra, rss_ours),
    ];
    let rc = if c.is_empty() { 0.0 } else { med(&c) };
    if !c.is_empty() {
        rows.push(("wasmlet WAGI (wagi-hello, wasip1)", &c, rc, rss_wagi));
    }
    for (name, runs, rate, rss) in rows {
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
    match c.is_empty() {
        false => println!(
            "  ratio WAGI / wasi:http, both under wasmlet: {:.2}x requests/s",
            rc / ra
        ),
        true => println!(
            "  WAGI left out: {} missing (make bench builds it)",
            wagi_module.display()
        ),
    }
}

/// RSS (KiB) of the shim tree serving container `id`, 0 if none.
fn shim_tree_memory(ctd: &Containerd, id: &str) -> u64 {
    let mut shim = processes_with(&[
        OURS.shim,
        &format!("-id {id} "),
        &ctd.address.to_string_lossy(),
    ]);
    shim.retain(|(_, cmd)| !cmd.contains(" start"));
    shim.first().map(|p| tree_memory(p.0).0).unwrap_or_default()
}
