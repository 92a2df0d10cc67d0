//! End-to-end tests: a real containerd on private paths, the release-built shims on its
//! PATH, driven with `ctr` and containerd's APIs exactly as a user would. Needs root; run
//! with `make test`. The suite runs once per containerd version (Debian's 1.6.20 as
//! `containerd1.6::`, the 2.3.4 of `../shared` as `containerd2.3::`) and engine
//! (`wasmtime::`, `wasmedge::`), each against a containerd of its own; where an engine
//! cannot do something, the test says so. Without root, a containerd version, an engine or
//! the built shims, its tests are reported ignored, with the reason printed first.

mod cache;
mod cgroups;
mod deploy_images;
mod errors;
mod exec;
mod hostile;
mod http;
mod images;
mod info;
mod isolation;
mod lifecycle;
mod mounts;
mod node_install;
mod pod_lifecycle;
mod pods;
mod registry;
mod restart;
mod run;
mod support;
mod terminal;
mod userns;

use libtest_mimic::{Arguments, Trial};

fn main() {
    // In a container, this binary may be the hostile program a test runs.
    hostile::thread_bomb_if_asked();
    let args = Arguments::from_args();
    let base = wasmlet_tests::containerd::Options::from_env();
    let mut trials = Vec::new();
    for flavour in support::FLAVOURS.iter() {
        let opts = support::options(flavour);
        let unavailable = wasmlet_tests::containerd::unavailable_reason(&opts);
        let prefix = format!("containerd{}", flavour.name);
        if let Some(why) = &unavailable {
            eprintln!("{prefix} tests ignored: {why}");
        }
        for engine in &support::ENGINES {
            let engine_unavailable = unavailable.clone().or_else(|| engine.unavailable(&base));
            if let (None, Some(why)) = (&unavailable, &engine_unavailable) {
                eprintln!("{prefix}::{} tests ignored: {why}", engine.name);
            }
            for (name, test) in run::TESTS
                .iter()
                .chain(lifecycle::TESTS)
                .chain(errors::TESTS)
                .chain(images::TESTS)
                .chain(cache::TESTS)
                .chain(isolation::TESTS)
                .chain(cgroups::TESTS)
                .chain(pods::TESTS)
                .chain(http::TESTS)
                .chain(http::wagi::TESTS)
                .chain(exec::TESTS)
                .chain(info::TESTS)
                .chain(mounts::TESTS)
                .chain(restart::TESTS)
                .chain(pod_lifecycle::TESTS)
                .chain(terminal::TESTS)
                .chain(userns::TESTS)
                .chain(hostile::ENGINE)
                .chain(hostile::FILESYSTEM)
                .chain(hostile::RESOURCES)
                .chain(hostile::THREADS)
            {
                // Every end-to-end test needs root (containerd, mounts, namespaces, cgroups):
                // libtest shows the kind as `[root]` before the name.
                let trial = Trial::test(format!("{prefix}::{}::{name}", engine.name), move || {
                    test(&support::containerd(flavour, engine));
                    Ok(())
                })
                .with_kind("root");
                trials.push(trial.with_ignored_flag(engine_unavailable.is_some()));
            }
        }
        let registry_unavailable = unavailable
            .clone()
            .or_else(wasmlet_tests::registry::unavailable);
        if let (None, Some(why)) = (&unavailable, &registry_unavailable) {
            eprintln!("{prefix}::registry tests ignored: {why}");
        }
        let wkg_unavailable = registry_unavailable
            .clone()
            .or_else(wasmlet_tests::registry::wkg_unavailable);
        if let (None, Some(why)) = (&registry_unavailable, &wkg_unavailable) {
            eprintln!("{prefix}::registry wkg tests ignored: {why}");
        }
        // Engine-neutral tests: once per version, on the first engine's containerd, each
        // list ignored for its own reason.
        let neutral = [
            (deploy_images::TESTS, &unavailable),
            (node_install::TESTS, &unavailable),
            (registry::TESTS, &registry_unavailable),
            (registry::WKG_TESTS, &wkg_unavailable),
        ];
        for (tests, why) in neutral {
            for (name, test) in tests {
                let trial = Trial::test(format!("{prefix}::{name}"), move || {
                    test(&support::containerd(flavour, &support::ENGINES[0]));
                    Ok(())
                })
                .with_kind("root");
                trials.push(trial.with_ignored_flag(why.is_some()));
            }
        }
    }
    let conclusion = libtest_mimic::run(&args, trials);
    support::shutdown();
    conclusion.exit();
}
