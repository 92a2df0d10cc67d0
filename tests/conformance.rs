//! CRI conformance: critest (cri-tools 1.36.0, from `../shared`) against containerd's CRI
//! plugin with each engine's runtime handler, as kubelet would use it: `wasmtime` on each
//! containerd version, the other engines built and named in `WASMLET_ENGINES` on the newest
//! (the CRI paths are the shim's, shared by every engine; `WASMLET_CRITEST_ALL_ENGINES=1`
//! runs every engine on every version). The engines after the first leave out the host-port
//! mapping test (CNI plumbing, the same for every handler, a known failure here that waits
//! 60 s). Every test must pass but the ones listed in `tests/critest/known-failures.toml`,
//! which fail on this host for runc as well (each with its reason; the README lists them).
//!
//! `WASMLET_CRITEST_BASELINE=1` also runs the suite with the `runc` handler on the same
//! containerd and checks that whatever fails for wasmlet fails for runc too (the known list
//! is then printed for comparison, not used). `WASMLET_CRITEST` picks versions (`2.3`, or
//! `0` for none; CI runs 2.3 only, for time). Needs root; without `../shared` the tests are
//! reported ignored, with the reason.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use libtest_mimic::{Arguments, Trial};
use wasmlet_tests::containerd::{Containerd, Flavour, Options};
use wasmlet_tests::critest::{self, Outcome, Report};

/// How long one critest run may take (both handlers run in turn in a baseline run).
const SUITE_TIMEOUT: Duration = Duration::from_secs(40 * 60);
/// The engines, each a runtime handler of the same name; the first runs on every version.
const ENGINES: [&str; 4] = ["wasmtime", "wasmer", "wamr", "wasmedge"];

fn main() {
    let mut args = Arguments::from_args();
    // critest binds fixed host ports (12000-12003): one run at a time.
    args.test_threads = Some(1);
    let mut trials = Vec::new();
    let flavours = Flavour::all();
    let newest = flavours.last().map(|f| f.name);
    for flavour in &flavours {
        for handler in ENGINES {
            let mut opts = Options::from_env();
            opts.flavour = flavour.clone();
            let unavailable = wasmlet_tests::containerd::unavailable_reason(&opts)
                .or_else(critest::unavailable)
                .or_else(|| left_out(flavour.name))
                .or_else(|| engine_left_out(&opts, handler, Some(flavour.name) == newest));
            let name = format!("critest::containerd{}::{handler}", flavour.name);
            if let Some(why) = &unavailable {
                eprintln!("{name} ignored: {why}");
            }
            let trial = Trial::test(name, move || conformance(opts, handler).map_err(Into::into))
                .with_kind("root")
                .with_ignored_flag(unavailable.is_some());
            trials.push(trial);
        }
    }
    libtest_mimic::run(&args, trials).exit();
}

/// Why `WASMLET_CRITEST` leaves version `name` out, if it does: `0` runs none, a list of
/// versions (`"2.3"`, `"1.6 2.3"`) runs those; unset or empty runs every version.
fn left_out(name: &str) -> Option<String> {
    let wanted = std::env::var("WASMLET_CRITEST").unwrap_or_default();
    let wanted = wanted.trim();
    if wanted.is_empty() || wanted.split_whitespace().any(|v| v == name) {
        return None;
    }
    Some(format!(
        "WASMLET_CRITEST={wanted:?} leaves containerd {name} out \
         (run it with `make critest WASMLET_CRITEST={name}`)"
    ))
}

/// Why engine `handler` does not run critest on this version, if it does not.
fn engine_left_out(opts: &Options, handler: &str, newest: bool) -> Option<String> {
    let wanted = std::env::var("WASMLET_ENGINES").unwrap_or_else(|_| "wasmtime".into());
    if !wanted.split_whitespace().any(|e| e == handler) {
        return Some(format!(
            "{handler} not in WASMLET_ENGINES={wanted:?} (`make critest` names every engine it builds)"
        ));
    }
    let shim = opts.shim_dir.join(format!("containerd-shim-{handler}-v1"));
    if !shim.exists() {
        return Some(format!(
            "{} missing: build it with ENGINES including {handler}",
            shim.display()
        ));
    }
    (handler != ENGINES[0] && !newest && !all_engines()).then(|| {
        format!(
            "{handler} runs critest on the newest containerd only (the CRI paths are the \
             shim's, shared by every engine): WASMLET_CRITEST_ALL_ENGINES=1 runs it here too"
        )
    })
}

/// `WASMLET_CRITEST_ALL_ENGINES=1`: every engine on every version, with every test.
fn all_engines() -> bool {
    std::env::var("WASMLET_CRITEST_ALL_ENGINES").is_ok_and(|v| v == "1")
}

/// Where a run keeps its reports and logs.
fn report_dir(flavour: &Flavour) -> PathBuf {
    let dir = wasmlet_tests::target_dir()
        .join("critest")
        .join(format!("containerd{}", flavour.name));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fn conformance(mut opts: Options, handler: &str) -> Result<(), String> {
    opts.cri_subnet = Some("127.91.0.0/24".into());
    opts.sandbox_image = critest::SANDBOX_IMAGE.into();
    let flavour = opts.flavour.clone();
    let ctd = Containerd::start(&opts)?;
    let ready = wasmlet_tests::cmd::eventually(Duration::from_secs(30), || {
        wasmlet_tests::cri::Cri::connect(&ctd).is_ok_and(|c| c.pods().is_ok())
    });
    if !ready {
        return Err(format!("the CRI plugin did not come up:\n{}", ctd.log()));
    }
    critest::import_images(&ctd)?;
    let dir = report_dir(&flavour);
    // The host-port test is CNI plumbing, the same for every handler, and a known 60 s
    // timeout here: the first engine runs it, the others leave it out (as a skip).
    let skip: &[&str] = if handler == ENGINES[0] || all_engines() {
        &[]
    } else {
        &[critest::HOST_PORT]
    };
    let ours = critest::run_suite(&ctd, handler, &dir, SUITE_TIMEOUT, skip)?;
    summary(handler, &ours);
    // 2.x's CRI offers user namespaces to a handler whose features list them with idmapped
    // mounts: critest then runs its UserNamespaces tests, which must not be skipped.
    if flavour.config_version >= 3 {
        let userns: Vec<(&String, &Outcome)> = ours
            .tests
            .iter()
            .filter(|(name, _)| name.contains("UserNamespaces"))
            .collect();
        if userns.is_empty() || userns.iter().any(|(_, o)| **o == Outcome::Skipped) {
            return Err(format!(
                "critest's UserNamespaces tests did not all run: {userns:?}"
            ));
        }
    }
    let baseline = std::env::var("WASMLET_CRITEST_BASELINE").is_ok_and(|v| v == "1");
    let expected: BTreeMap<String, String> = if baseline {
        let runc = critest::run_suite(&ctd, "runc", &dir, SUITE_TIMEOUT, &[])?;
        summary("runc", &runc);
        runc.failed()
            .into_iter()
            .map(|(n, m)| {
                (
                    n.to_string(),
                    format!("fails for runc too: {}", first_line(m)),
                )
            })
            .collect()
    } else {
        known_failures(&flavour)?
    };
    let unexpected: Vec<(&str, &str)> = ours
        .failed()
        .into_iter()
        .filter(|(name, _)| !expected.contains_key(*name))
        .collect();
    for (name, reason) in &expected {
        let now = match ours.tests.get(name) {
            Some(Outcome::Failed(_)) => "fails as known",
            Some(Outcome::Passed) => "PASSES now: drop it from the known list",
            Some(Outcome::Skipped) => "skipped",
            None => "did not run",
        };
        eprintln!("known: {name}: {now} ({reason})");
    }
    drop(ctd);
    if unexpected.is_empty() {
        return Ok(());
    }
    Err(unexpected
        .iter()
        .map(|(name, message)| format!("FAILED {name}:\n  {}", first_line(message)))
        .collect::<Vec<_>>()
        .join("\n")
        + &format!("\n(reports and critest's output in {})", dir.display()))
}

fn summary(handler: &str, r: &Report) {
    eprintln!(
        "critest with handler {handler}: {} passed, {} failed, {} skipped",
        r.count(|o| *o == Outcome::Passed),
        r.count(|o| matches!(o, Outcome::Failed(_))),
        r.count(|o| *o == Outcome::Skipped),
    );
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
}

/// The tests that fail on this host for runc as well, for `flavour`, with their reasons.
fn known_failures(flavour: &Flavour) -> Result<BTreeMap<String, String>, String> {
    let path = wasmlet_tests::workspace_root().join("tests/critest/known-failures.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let table: BTreeMap<String, BTreeMap<String, String>> =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(table
        .get(&format!("containerd{}", flavour.name))
        .cloned()
        .unwrap_or_default())
}
