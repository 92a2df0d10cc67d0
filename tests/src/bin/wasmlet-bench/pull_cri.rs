//! From a registry to a running container through kubelet's calls, against a containerd
//! with its CRI plugin reaching the registry by `hosts.toml` (as a node's admin sets it
//! up): RunPodSandbox for the row's handler, then PullImage, CreateContainer and
//! StartContainer, then the pod stopped and removed and the image removed (RemoveImage,
//! as kubelet's image garbage collection does) before the next round. The figure that
//! compares is PullImage to a started container; the sandbox is reported beside it.

use std::time::{Duration, Instant};

use wasmlet_tests::cmd::eventually;
use wasmlet_tests::containerd::{Containerd, Options};
use wasmlet_tests::cri::{container, pod_config, Cri};
use wasmlet_tests::fixtures::{import_image, pause_image};
use wasmlet_tests::registry::Registry;

use crate::pull::{pull_size, Row};
use crate::start::{median, ms};

/// CRI's namespace.
const K8S_NS: &str = "k8s.io";

/// One round's times: the sandbox, the pull, the container's create and start.
#[derive(Clone, Copy)]
struct Round {
    sandbox: Duration,
    pull: Duration,
    start: Duration,
}

pub fn pull_to_running(opts: &Options, registry: &Registry, rows: &[Row], runs: usize) {
    println!("\nPullImage to a running container, through CRI (RunPodSandbox, PullImage, CreateContainer, StartContainer)");
    let mut opts = opts.clone();
    opts.cri_subnet = Some("127.250.0.0/24".into());
    let ctd = Containerd::start(&opts).unwrap_or_else(|e| panic!("{e}"));
    let cri = Cri::connect(&ctd).unwrap_or_else(|e| panic!("CRI: {e}"));
    let up = eventually(Duration::from_secs(30), || cri.pods().is_ok());
    assert!(up, "the CRI plugin did not come up:\n{}", ctd.log());
    import_image(&ctd, K8S_NS, &pause_image());
    registry
        .write_hosts_toml(&ctd.dir)
        .unwrap_or_else(|e| panic!("hosts.toml: {e}"));
    let logs = tempfile::tempdir().unwrap();
    // containerd 1.6's CRI unpacks every image it pulls and cannot unpack wasm layers.
    let rows: Vec<&Row> = rows
        .iter()
        .filter(|row| {
            let runs_here = ctd.flavour.config_version != 2
                || row.spec.form != wasmlet_oci::image::Form::WasmLayers;
            if !runs_here {
                println!(
                    "  {} left out: containerd 1.6's CRI cannot unpack wasm layers",
                    row.name
                );
            }
            runs_here
        })
        .collect();
    let mut times: Vec<Vec<Round>> = vec![Vec::new(); rows.len()];
    for i in 0..runs + 1 {
        for (k, row) in rows.iter().enumerate() {
            let t = pod_round(&cri, row, &format!("pull-cri-{k}-{i}"), logs.path());
            // The first round warms the registry's and the page cache's view of each blob.
            if i > 0 {
                times[k].push(t);
            }
        }
    }
    let of = |t: &[Round], f: fn(&Round) -> Duration| median(t.iter().map(f).collect());
    let to_running = |r: &Round| r.pull + r.start;
    let baseline = of(&times[0], to_running);
    println!(
        "  {runs} rounds each (ms, medians)            pulled  sandbox    pull   start  pull to running  vs runc"
    );
    for (row, t) in rows.iter().zip(&times) {
        println!(
            "  {:<38} {:>7.1} kB {:>6.1} {:>7.1} {:>7.1} {:>16.1}   {:.2}x",
            row.name,
            pull_size(&row.spec) as f64 / 1000.0,
            ms(of(t, |r| r.sandbox)),
            ms(of(t, |r| r.pull)),
            ms(of(t, |r| r.start)),
            ms(of(t, to_running)),
            of(t, to_running).as_secs_f64() / baseline.as_secs_f64()
        );
    }
    drop(cri);
    drop(ctd);
    wasmlet_tests::leaks::remove_cgroup_parent(K8S_NS);
}

/// One pod of `row`'s image, named `name`: the times of its sandbox, pull and start. The
/// pod and the image are gone when it returns.
fn pod_round(cri: &Cri, row: &Row, name: &str, logs: &std::path::Path) -> Round {
    let image = row.spec.name.as_str();
    let config = pod_config(name, row.handler, logs);
    let began = Instant::now();
    let pod = cri
        .run_pod(config.clone(), row.handler)
        .unwrap_or_else(|e| panic!("RunPodSandbox for {}: {e}", row.name));
    let sandbox = began.elapsed();
    let began = Instant::now();
    cri.pull_image(image, None)
        .unwrap_or_else(|e| panic!("PullImage {image}: {e}"));
    let pull = began.elapsed();
    let began = Instant::now();
    let command: Vec<&str> = row.command.iter().map(String::as_str).collect();
    let id = cri
        .create(&pod, container("app", image, &command, 0), &config)
        .unwrap_or_else(|e| panic!("CreateContainer of {image}: {e}"));
    cri.start(&id)
        .unwrap_or_else(|e| panic!("StartContainer of {image}: {e}"));
    let start = began.elapsed();
    cri.stop_pod(&pod)
        .unwrap_or_else(|e| panic!("StopPodSandbox: {e}"));
    cri.remove_pod(&pod)
        .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}"));
    cri.remove_image(image)
        .unwrap_or_else(|e| panic!("RemoveImage {image}: {e}"));
    Round {
        sandbox,
        pull,
        start,
    }
}
