//! Shared state and helpers of the e2e tests: the one private containerd, the runtime under
//! test, and the leak check every test ends with.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmlet_tests::cmd::{eventually, Output};
use wasmlet_tests::containerd::{Containerd, Flavour, Options};
use wasmlet_tests::leaks;

/// A test: gets the containerd of the engine under test, panics on failure.
pub type Test = fn(&Containerd);

/// The containerd namespace the tests of `ctd` run in: one per containerd, so that the
/// same test on two versions or engines at once never shares a container's cgroup
/// (`/<namespace>/<id>`, ctr's default).
pub fn ns(ctd: &Containerd) -> &str {
    &ctd.ns
}

/// An engine the suite runs against, with what it can do.
pub struct Engine {
    pub name: &'static str,
    pub runtime: &'static str,
    pub shim: &'static str,
    /// Runs WASI preview 2 components.
    pub components: bool,
    /// Always keeps compiled modules in the compile cache (WasmEdge does only when its
    /// library has the AOT compiler; otherwise it must say `NotUsed` consistently).
    pub compile_cache: bool,
    /// Stops a module that grows past its memory limit itself (exit 137, /tasks/oom);
    /// otherwise the grow is refused and the module decides.
    pub reports_oom: bool,
    /// Says stdio is a character device (a terminal) whatever it is, as its own CLI does
    /// (Wasmer's WASI hard-codes it).
    pub stdio_always_a_tty: bool,
    /// Traps on unbounded recursion at a stack limit of its own. WasmEdge 0.17 has none: its
    /// call stack grows on the heap (about 360 MB/s here) until the memory limit kills it.
    pub bounds_recursion: bool,
}

/// Every engine; the suite runs once per engine, each against a containerd of its own.
pub const ENGINES: [Engine; 4] = [
    Engine {
        name: "wasmtime",
        runtime: "io.containerd.wasmtime.v1",
        shim: "containerd-shim-wasmtime-v1",
        components: true,
        compile_cache: true,
        reports_oom: true,
        stdio_always_a_tty: false,
        bounds_recursion: true,
    },
    Engine {
        name: "wasmedge",
        runtime: "io.containerd.wasmedge.v1",
        shim: "containerd-shim-wasmedge-v1",
        components: false,
        compile_cache: false,
        reports_oom: false,
        stdio_always_a_tty: false,
        bounds_recursion: false,
    },
    Engine {
        name: "wasmer",
        runtime: "io.containerd.wasmer.v1",
        shim: "containerd-shim-wasmer-v1",
        components: false,
        compile_cache: true,
        reports_oom: true,
        stdio_always_a_tty: true,
        bounds_recursion: true,
    },
    Engine {
        name: "wamr",
        runtime: "io.containerd.wamr.v1",
        shim: "containerd-shim-wamr-v1",
        components: false,
        compile_cache: false,
        reports_oom: true,
        stdio_always_a_tty: false,
        bounds_recursion: true,
    },
];

impl Engine {
    /// Why this engine's tests cannot run here, if they cannot.
    pub fn unavailable(&self, opts: &Options) -> Option<String> {
        let wanted = std::env::var("WASMLET_ENGINES").unwrap_or_else(|_| "wasmtime".into());
        if !wanted.split_whitespace().any(|e| e == self.name) {
            return Some(format!(
                "{} not in WASMLET_ENGINES={wanted:?}: `make test` runs every engine it \
                 builds (WasmEdge when ../shared brings libwasmedge or WASMEDGE_DIR names \
                 one); pick with `ENGINES=\"wasmtime wasmer ...\"`",
                self.name
            ));
        }
        let shim = opts.shim_dir.join(self.shim);
        (!shim.exists()).then(|| {
            format!(
                "{} missing: build it with ENGINES including {}",
                shim.display(),
                self.name
            )
        })
    }
}

/// The containerds the suite started: (version, engine, CRI or not) and the daemon.
type Started = Vec<((&'static str, &'static str, bool), Arc<Containerd>)>;

static CONTAINERDS: Mutex<Started> = Mutex::new(Vec::new());

/// Options for `flavour`'s containerd.
pub fn options(flavour: &Flavour) -> Options {
    Options {
        flavour: flavour.clone(),
        ..Options::from_env()
    }
}

/// The containerd of version `flavour` for `engine`'s tests, started on first use.
pub fn containerd(flavour: &'static Flavour, engine: &'static Engine) -> Arc<Containerd> {
    started(flavour, engine, false, || {
        Containerd::start(&options(flavour)).unwrap_or_else(|e| panic!("{e}"))
    })
}

fn started(
    flavour: &'static Flavour,
    engine: &'static Engine,
    cri: bool,
    start: impl FnOnce() -> Containerd,
) -> Arc<Containerd> {
    let key = (flavour.name, engine.name, cri);
    let mut all = CONTAINERDS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, c)) = all.iter().find(|(k, _)| *k == key) {
        return c.clone();
    }
    let ctd = Arc::new(start());
    all.push((key, ctd.clone()));
    ctd
}

/// Containerds a test started for itself (restarts), by address, and their engine.
static PRIVATE: Mutex<Vec<(std::path::PathBuf, &'static str)>> = Mutex::new(Vec::new());

/// A containerd of `like`'s version for `like`'s engine, for one test alone (it may stop and
/// start it), with `tweak` applied to its options; stopped and cleaned when dropped.
pub fn private_containerd(like: &Containerd, tweak: impl FnOnce(&mut Options)) -> Containerd {
    let mut opts = options(&like.flavour);
    tweak(&mut opts);
    let ctd = Containerd::start(&opts).unwrap_or_else(|e| panic!("{e}"));
    PRIVATE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((ctd.address.clone(), engine(like).name));
    ctd
}

/// The engine whose containerd `ctd` is.
pub fn engine(ctd: &Containerd) -> &'static Engine {
    let shared = CONTAINERDS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .find(|(_, c)| c.address == ctd.address)
        .map(|((_, engine, _), _)| *engine);
    let name = shared
        .or_else(|| {
            PRIVATE
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .find(|(address, _)| *address == ctd.address)
                .map(|(_, engine)| *engine)
        })
        .expect("a containerd started by the suite");
    ENGINES
        .iter()
        .find(|e| e.name == name)
        .expect("known engine")
}

/// The runtime under test on `ctd`.
pub fn rt(ctd: &Containerd) -> &'static str {
    engine(ctd).runtime
}

/// A containerd with its CRI plugin on (our handlers as `deploy/containerd/` gives them),
/// of the same version as `ctd`, for the pod tests of `ctd`'s engine; started on first use,
/// the sandbox and test images imported.
pub fn cri_containerd(ctd: &Containerd) -> Arc<Containerd> {
    let engine = engine(ctd);
    let flavour = FLAVOURS
        .iter()
        .find(|f| f.name == ctd.flavour.name)
        .expect("a known version");
    started(flavour, engine, true, || {
        start_cri(options(flavour), cri_octet(flavour, engine, 0))
    })
}

/// A containerd with its CRI plugin like [`cri_containerd`]'s, for one test alone (it may
/// restart it).
pub fn private_cri_containerd(like: &Containerd) -> Containerd {
    let engine = engine(like);
    let octet = cri_octet(&like.flavour, engine, 1);
    let ctd = start_cri(options(&like.flavour), octet);
    PRIVATE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((ctd.address.clone(), engine.name));
    ctd
}

/// The second octet of a CRI containerd's loopback subnet: one per version, engine and
/// `slot` (shared 0, private 1), so that no two bridges route the same range.
fn cri_octet(flavour: &Flavour, engine: &Engine, slot: usize) -> usize {
    let per_slot = FLAVOURS.len() * ENGINES.len();
    77 + slot * per_slot
        + FLAVOURS
            .iter()
            .position(|f| f.name == flavour.name)
            .unwrap_or(0)
            * ENGINES.len()
        + ENGINES
            .iter()
            .position(|e| e.name == engine.name)
            .unwrap_or(0)
}

fn start_cri(mut opts: Options, octet: usize) -> Containerd {
    opts.cri_subnet = Some(format!("127.{octet}.0.0/24"));
    let ctd = Containerd::start(&opts).unwrap_or_else(|e| panic!("{e}"));
    wait_for_cri(&ctd);
    crate::pods::import_images(&ctd);
    ctd
}

/// Wait until `ctd`'s CRI plugin answers.
pub fn wait_for_cri(ctd: &Containerd) {
    let cri_ready = eventually(Duration::from_secs(30), || {
        wasmlet_tests::cri::Cri::connect(ctd).is_ok_and(|c| c.pods().is_ok())
    });
    assert!(cri_ready, "the CRI plugin did not come up:\n{}", ctd.log());
}

/// The containerd versions the suite runs against.
pub static FLAVOURS: std::sync::LazyLock<[Flavour; 2]> = std::sync::LazyLock::new(Flavour::all);

/// Stop every containerd (after all tests) and clean what they left.
pub fn shutdown() {
    let taken = std::mem::take(&mut *CONTAINERDS.lock().unwrap_or_else(|p| p.into_inner()));
    drop(taken);
}

/// `ctr run --rm --runtime <RUNTIME> <flags> --rootfs <dir> <id> <args>` with a deadline.
pub fn run_rootfs(
    ctd: &Containerd,
    id: &str,
    dir: &std::path::Path,
    flags: &[&str],
    args: &[&str],
) -> Output {
    let dir = dir.to_string_lossy();
    let mut all = vec!["run", "--rm", "--runtime", rt(ctd)];
    all.extend_from_slice(flags);
    all.extend_from_slice(&["--rootfs", &dir, id]);
    all.extend_from_slice(args);
    ctd.ctr_timeout(ns(ctd), &all, Some(b""), Duration::from_secs(60))
}

/// Assert that container `id` left nothing behind: no workload or shim process, no mount
/// or bundle directory, no shim socket, no cgroup.
pub fn assert_clean(ctd: &Containerd, id: &str) {
    let bundle = ctd.bundle_dir(ns(ctd), id);
    let socket = ctd.shim_socket(ns(ctd), id);
    let shim_arg = format!("-id {id} ");
    let cgroup = format!("/{}/{id}", ns(ctd));
    let clean = eventually(Duration::from_secs(10), || {
        leaks::workload_processes(id, &bundle).is_empty()
            && leaks::processes_with(&[
                "containerd-shim-",
                &shim_arg,
                &ctd.address.to_string_lossy(),
            ])
            .is_empty()
            && leaks::mounts_under(&bundle).is_empty()
            && !bundle.exists()
            && !socket.exists()
            && leaks::cgroup_dirs(&cgroup).is_empty()
    });
    assert!(
        clean,
        "container {id} left: workloads {:?}, shims {:?}, mounts {:?}, bundle exists {}, socket exists {}, cgroups {:?}",
        leaks::workload_processes(id, &bundle),
        leaks::processes_with(&["containerd-shim-", &shim_arg]),
        leaks::mounts_under(&bundle),
        bundle.exists(),
        socket.exists(),
        leaks::cgroup_dirs(&cgroup)
    );
}

/// `ctr events`, collected in the background.
pub struct Events {
    child: std::process::Child,
    seen: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Events {
    /// Subscribe, and return once the subscription is known to be live.
    pub fn start(ctd: &Containerd) -> Events {
        use std::io::Read;
        let mut child = ctd
            .ctr_command(ns(ctd))
            .arg("events")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("ctr events");
        let seen = Arc::new(Mutex::new(String::new()));
        let mut stdout = child.stdout.take().expect("piped stdout");
        let sink = seen.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let events = Events {
            child,
            seen,
            reader: Some(reader),
        };
        let subscribed = eventually(Duration::from_secs(20), || {
            ctd.ctr(ns(ctd), &["namespaces", "create", "wasmlet-events-probe"]);
            ctd.ctr(ns(ctd), &["namespaces", "remove", "wasmlet-events-probe"]);
            events.text().contains("/namespaces/create")
        });
        assert!(subscribed, "ctr events never saw a namespace event");
        events
    }

    /// Everything seen so far.
    pub fn text(&self) -> String {
        self.seen.lock().unwrap().clone()
    }

    /// The task event lines that mention container `id`.
    pub fn task_events(&self, id: &str) -> Vec<String> {
        let needle = format!("\"container_id\":\"{id}\"");
        self.text()
            .lines()
            .filter(|l| l.contains("/tasks/") && l.contains(&needle))
            .map(str::to_string)
            .collect()
    }

    /// Wait until a task event with `topic` for `id` arrives; the lines so far.
    pub fn wait_for(&self, id: &str, topic: &str) -> Vec<String> {
        eventually(Duration::from_secs(10), || {
            self.task_events(id).iter().any(|l| l.contains(topic))
        });
        self.task_events(id)
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}
