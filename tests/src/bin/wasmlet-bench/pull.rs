//! From a registry to an exited container: `ctr image pull --plain-http` (fetch and unpack,
//! the content path kubelet's `PullImage` takes too) then `ctr run --rm`, from a private
//! `docker-registry`, each image removed (`ctr image rm --sync`, so its content is
//! collected) before every pull. The hello example as wasm under our shim, against a static
//! busybox `echo` under runc (the baseline) and the same hello example built natively
//! (`<arch>-unknown-linux-musl`, static) in a scratch image under runc. What each pull
//! fetches (manifest, config, layers) is reported too, with the wasm-layer form's. Then the
//! same images through kubelet's calls ([`crate::pull_cri`]).

use std::path::Path;
use std::time::{Duration, Instant};

use wasmlet_oci::image::{build, Form, ImageSpec};
use wasmlet_oci::registry::{push, PushOptions};
use wasmlet_tests::containerd::{Containerd, Options};
use wasmlet_tests::fixtures::module_image;
use wasmlet_tests::registry::Registry;

use crate::start::{median, ms};
use crate::{NS, OURS, RUNC};

/// The native hello example, static, as `make bench` builds it.
fn native_hello() -> std::path::PathBuf {
    wasmlet_tests::target_dir().join(format!(
        "{}-unknown-linux-musl/release/hello",
        std::env::consts::ARCH
    ))
}

/// One row: what runs, under which runtime (and CRI handler), from which image.
pub struct Row {
    pub name: &'static str,
    pub runtime: &'static str,
    pub handler: &'static str,
    pub spec: ImageSpec,
    /// The container's command through CRI (empty: the image's entrypoint).
    pub command: Vec<String>,
}

/// Bytes a pull of `spec` fetches: its manifest, config and layers (all uncompressed).
pub fn pull_size(spec: &ImageSpec) -> usize {
    let built = build(spec).unwrap_or_else(|e| panic!("{e}"));
    built.manifest.data.len() + built.blobs.iter().map(|b| b.data.len()).sum::<usize>()
}

pub fn pull_to_exit(ctd: &Containerd, opts: &Options, hello: &[u8], busybox: &Path) {
    println!("\npull then run, from a local registry (ctr image pull + ctr run --rm)");
    if let Some(why) = wasmlet_tests::registry::unavailable() {
        println!("  left out: {why}");
        return;
    }
    let registry = Registry::start(None).unwrap_or_else(|e| panic!("registry: {e}"));
    let reference = |name: &str| format!("{}/bench/{name}:v1", registry.host);
    // A file of this run's own in each image: no layer here is one the other sections
    // imported (containerd would find its content and snapshot and fetch nothing).
    let nonce = format!("{:?}", std::time::SystemTime::now());
    let own = |spec: ImageSpec| spec.file("/etc/pull-bench", nonce.clone(), 0o644);
    let mut bb = ImageSpec::new(&reference("busybox")).file(
        "/bin/busybox",
        std::fs::read(busybox).unwrap(),
        0o755,
    );
    bb.entrypoint = vec!["/bin/busybox".into(), "echo".into(), "hello".into()];
    let mut rows = vec![
        Row {
            name: RUNC.name,
            runtime: RUNC.runtime,
            handler: "runc",
            spec: own(bb),
            command: Vec::new(),
        },
        Row {
            name: OURS.name,
            runtime: OURS.runtime,
            handler: "wasmtime",
            spec: own(module_image(&reference("hello-wasm"), hello.to_vec())),
            command: Vec::new(),
        },
    ];
    match std::fs::read(native_hello()) {
        Ok(native) => {
            let mut spec = ImageSpec::new(&reference("hello-native")).file("/hello", native, 0o755);
            spec.entrypoint = vec!["/hello".into()];
            rows.push(Row {
                name: "runc hello (native, musl, static)",
                runtime: RUNC.runtime,
                handler: "runc",
                spec: own(spec),
                command: Vec::new(),
            });
        }
        Err(e) => println!(
            "  native hello left out: {}: {e} (`make bench` builds it)",
            native_hello().display()
        ),
    }
    let plain = PushOptions {
        plain_http: true,
        credentials: None,
    };
    // The wasm-layer artifact of the same module (CRI pulls it; `ctr run` cannot run it):
    // the container names its module, as the artifact's config has no entrypoint.
    // A wasm-layer image holds modules only: this run's own mark is a custom section.
    let mut layers = ImageSpec::new(&reference("hello-layers")).file(
        "/hello.wasm",
        wasmlet_tests::fixtures::unique(hello.to_vec(), &nonce),
        0o644,
    );
    layers.form = Form::WasmLayers;
    let layers = Row {
        name: "wasmlet (wasmtime) wasm-layer artifact",
        runtime: OURS.runtime,
        handler: "wasmtime",
        spec: layers,
        command: vec!["hello.wasm".into()],
    };
    for row in rows.iter().chain([&layers]) {
        push(&row.spec, &row.spec.name, &plain).unwrap_or_else(|e| panic!("{e}"));
    }
    let runs = crate::runs().min(15);
    let mut times: Vec<Vec<(Duration, Duration)>> = vec![Vec::new(); rows.len()];
    for i in 0..runs + 1 {
        for (k, row) in rows.iter().enumerate() {
            let t = pull_and_run(ctd, row, &format!("pull-{k}-{i}"));
            // The first round warms the registry's and the page cache's view of each blob.
            if i > 0 {
                times[k].push(t);
            }
        }
    }
    let total = |t: &[(Duration, Duration)]| median(t.iter().map(|(p, r)| *p + *r).collect());
    let baseline = total(&times[0]);
    println!("  {runs} rounds each (ms, medians)        pulled     pull    run   total  vs runc");
    for (row, t) in rows.iter().zip(&times) {
        let (pull, run) = (
            median(t.iter().map(|x| x.0).collect()),
            median(t.iter().map(|x| x.1).collect()),
        );
        println!(
            "  {:<34} {:>7.1} kB {:>6.1} {:>6.1} {:>7.1}   {:.2}x",
            row.name,
            pull_size(&row.spec) as f64 / 1000.0,
            ms(pull),
            ms(run),
            ms(total(t)),
            total(t).as_secs_f64() / baseline.as_secs_f64()
        );
    }
    println!(
        "  the same module as a wasm-layer artifact: {:.1} kB (CRI pulls it; `ctr run` cannot run it)",
        pull_size(&layers.spec) as f64 / 1000.0
    );
    rows.push(layers);
    crate::pull_cri::pull_to_running(opts, &registry, &rows, runs);
}

/// Remove the image (and, `--sync`, its content), pull it, run it: (pull, run) times.
fn pull_and_run(ctd: &Containerd, row: &Row, id: &str) -> (Duration, Duration) {
    let image = row.spec.name.as_str();
    let _ = ctd.ctr(NS, &["image", "rm", "--sync", image]);
    let start = Instant::now();
    let out = ctd.ctr_timeout(
        NS,
        &["image", "pull", "--plain-http", image],
        None,
        Duration::from_secs(120),
    );
    let pulled = start.elapsed();
    assert_eq!(out.code, Some(0), "pulling {image}: {}", out.stderr);
    let ran =
        crate::start::try_time_run(ctd, row.runtime, image, id, &[], Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("{image} failed: {e}"));
    (pulled, ran)
}
