//! Images imported with `ctr image import` (built by `wasmlet_oci::image`), the Rust
//! examples (a WASI p1 module and a p2 component), and filesystem permissions.

use wasmlet_tests::containerd::Containerd;
use wasmlet_tests::fixtures::{example, import_image, module_image, require, rootfs, wat};

use crate::support::{assert_clean, ns, rt, run_rootfs, Test};

pub const TESTS: &[(&str, Test)] = &[
    (
        "images::entrypoint_image_with_args_and_env",
        entrypoint_image_with_args_and_env,
    ),
    (
        "images::workdir_and_relative_entrypoint",
        workdir_and_relative_entrypoint,
    ),
    ("images::rust_wasip1_example", rust_wasip1_example),
    ("images::rust_wasip2_component", rust_wasip2_component),
    (
        "images::readonly_rootfs_refuses_writes",
        readonly_rootfs_refuses_writes,
    ),
    (
        "images::bind_mounts_are_preopened_ro_or_rw",
        bind_mounts_are_preopened_ro_or_rw,
    ),
    (
        "images::rootfs_image_with_wasm_platform",
        rootfs_image_with_wasm_platform,
    ),
    (
        "images::wasm_layer_image_through_the_api",
        wasm_layer_image_through_the_api,
    ),
    (
        "images::wasm_layer_selected_by_title",
        wasm_layer_selected_by_title,
    ),
    (
        "images::wasm_layer_component_through_the_api",
        wasm_layer_component_through_the_api,
    ),
    (
        "images::wasm_layer_image_with_ctr_run",
        wasm_layer_image_with_ctr_run,
    ),
];

fn wasm_layer_image(name: &str, modules: &[(&str, Vec<u8>)]) -> wasmlet_oci::image::ImageSpec {
    let mut spec = wasmlet_oci::image::ImageSpec::new(name);
    spec.form = wasmlet_oci::image::Form::WasmLayers;
    for (path, data) in modules {
        spec = spec.file(path, data.clone(), 0o644);
    }
    spec
}

fn api_try(
    ctd: &Containerd,
    image: &str,
    id: &str,
    args: &[&str],
) -> Result<wasmlet_tests::api::ApiRun, String> {
    let logs = tempfile::tempdir().unwrap();
    let run = wasmlet_tests::api::run_image(ctd, ns(ctd), image, rt(ctd), id, args, logs.path());
    assert_clean(ctd, id);
    run
}

fn api_run(ctd: &Containerd, image: &str, id: &str, args: &[&str]) -> wasmlet_tests::api::ApiRun {
    api_try(ctd, image, id, args).unwrap_or_else(|e| panic!("running {image} through the API: {e}"))
}

fn rootfs_image_with_wasm_platform(ctd: &Containerd) {
    let name = "docker.io/wasmlet/hello-wasip1:e2e";
    let mut spec = module_image(name, wat("hello"));
    spec.os = "wasip1".into();
    spec.architecture = "wasm".into();
    import_image(ctd, ns(ctd), &spec);
    let out = ctd
        .ctr(
            ns(ctd),
            &[
                "run",
                "--rm",
                "--platform",
                "wasip1/wasm",
                "--runtime",
                rt(ctd),
                name,
                "wasip1-rootfs",
            ],
        )
        .ok("ctr run --platform wasip1/wasm");
    assert_eq!(out.stdout_str(), "hello from wasm\n");
    assert_clean(ctd, "wasip1-rootfs");
}

fn wasm_layer_image_through_the_api(ctd: &Containerd) {
    let name = "docker.io/wasmlet/argsenv-layer:e2e";
    import_image(
        ctd,
        ns(ctd),
        &wasm_layer_image(name, &[("/argsenv.wasm", wat("argsenv"))]),
    );
    let run = api_run(ctd, name, "layer-args", &["argsenv.wasm", "x", "y z"]);
    assert_eq!(run.exit_code, 0, "{run:?}");
    let args: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("arg:"))
        .collect();
    assert_eq!(args, ["argsenv.wasm", "x", "y z"]);
}

fn wasm_layer_selected_by_title(ctd: &Containerd) {
    let name = "docker.io/wasmlet/two-layers:e2e";
    let modules = [
        ("/hello.wasm", wat("hello")),
        ("/exit42.wasm", wat("exit42")),
    ];
    import_image(ctd, ns(ctd), &wasm_layer_image(name, &modules));
    let run = api_run(ctd, name, "layer-second", &["/exit42.wasm"]);
    assert_eq!(run.exit_code, 42, "{run:?}");
    assert!(run.stderr.contains("exiting with 42"), "{run:?}");
    let run = api_run(ctd, name, "layer-first", &["anything"]);
    assert_eq!(
        (run.exit_code, run.stdout.as_str()),
        (0, "hello from wasm\n")
    );
}

fn wasm_layer_component_through_the_api(ctd: &Containerd) {
    let component = example("wasm32-wasip2", "hello");
    require(&component).unwrap_or_else(|e| panic!("{e}"));
    let name = "docker.io/wasmlet/hello-component-layer:e2e";
    import_image(
        ctd,
        ns(ctd),
        &wasm_layer_image(name, &[("/hello.wasm", std::fs::read(&component).unwrap())]),
    );
    if !crate::support::engine(ctd).components {
        let err = api_try(ctd, name, "layer-p2", &["hello.wasm"]).expect_err("component refused");
        assert!(refuses_components(ctd, None, &err));
        return;
    }
    let run = api_run(ctd, name, "layer-p2", &["hello.wasm", "layered"]);
    assert_eq!(run.exit_code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        "Hello from WebAssembly, wasmlet!\nargs: layered\n"
    );
}

fn run_image(ctd: &Containerd, image: &str, id: &str, args: &[&str]) -> wasmlet_tests::cmd::Output {
    let mut all = vec!["run", "--rm", "--runtime", rt(ctd), image, id];
    all.extend_from_slice(args);
    ctd.ctr(ns(ctd), &all)
}

fn entrypoint_image_with_args_and_env(ctd: &Containerd) {
    let name = "docker.io/wasmlet/argsenv:e2e";
    let mut spec = module_image(name, wat("argsenv"));
    spec.env = vec!["FROM_IMAGE=yes".into()];
    import_image(ctd, ns(ctd), &spec);
    // Without arguments the image's Entrypoint runs.
    let out = run_image(ctd, name, "img-noargs", &[]).ok("ctr run image");
    assert!(
        out.stdout_str().starts_with("arg:/app/argsenv.wasm\nenv:"),
        "{}",
        out.stdout_str()
    );
    assert_clean(ctd, "img-noargs");
    // ctr (1.6, like runc's) replaces Entrypoint and Cmd with the arguments it is given,
    // so the module is named again, as with any image under ctr.
    let out =
        run_image(ctd, name, "img-args", &["/app/argsenv.wasm", "x", "y z"]).ok("ctr run image");
    let text = out.stdout_str();
    let args: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("arg:"))
        .collect();
    assert_eq!(args, ["/app/argsenv.wasm", "x", "y z"]);
    assert!(text.contains("env:FROM_IMAGE=yes\n"), "{text}");
    assert_clean(ctd, "img-args");
}

fn workdir_and_relative_entrypoint(ctd: &Containerd) {
    let name = "docker.io/wasmlet/workdir:e2e";
    let mut spec = wasmlet_oci::image::ImageSpec::new(name).file(
        "/srv/app/argsenv.wasm",
        wat("argsenv"),
        0o755,
    );
    spec.entrypoint = vec!["./argsenv.wasm".into()];
    spec.workdir = Some("/srv/app".into());
    import_image(ctd, ns(ctd), &spec);
    let out = run_image(ctd, name, "img-workdir", &[]).ok("ctr run image");
    let text = out.stdout_str();
    assert!(text.contains("arg:./argsenv.wasm\n"), "{text}");
    // The workdir locates the module; the env is the image's alone (no PWD added).
    assert!(!text.contains("env:PWD="), "{text}");
    assert_clean(ctd, "img-workdir");
}

fn rust_wasip1_example(ctd: &Containerd) {
    let module = example("wasm32-wasip1", "hello");
    require(&module).unwrap_or_else(|e| panic!("{e}"));
    let name = "docker.io/wasmlet/hello-p1:e2e";
    import_image(
        ctd,
        ns(ctd),
        &module_image(name, std::fs::read(&module).unwrap()),
    );
    let out = run_image(ctd, name, "rust-p1", &["/app/hello-p1.wasm", "one", "two"]).ok("ctr run");
    assert_eq!(
        out.stdout_str(),
        "Hello from WebAssembly, wasmlet!\nargs: one two\n"
    );
    assert_clean(ctd, "rust-p1");
}

/// Engines without component support must refuse components with a message saying so.
pub(crate) fn refuses_components(ctd: &Containerd, out_code: Option<i32>, message: &str) -> bool {
    if crate::support::engine(ctd).components {
        return false;
    }
    assert_ne!(out_code, Some(0));
    assert!(
        message.contains("does not run WebAssembly components"),
        "{message}"
    );
    true
}

fn rust_wasip2_component(ctd: &Containerd) {
    let component = example("wasm32-wasip2", "hello");
    require(&component).unwrap_or_else(|e| panic!("{e}"));
    let dir = rootfs(&[("/hello.wasm", std::fs::read(&component).unwrap())]);
    if !crate::support::engine(ctd).components {
        let out = run_rootfs(ctd, "rust-p2", dir.path(), &[], &["/hello.wasm"]);
        assert!(refuses_components(ctd, out.code, &out.stderr));
        let _ = ctd.ctr(ns(ctd), &["container", "rm", "rust-p2"]);
        assert_clean(ctd, "rust-p2");
        return;
    }
    let out = run_rootfs(
        ctd,
        "rust-p2",
        dir.path(),
        &["--env", "GREETING=component"],
        &["/hello.wasm", "p2"],
    )
    .ok("ctr run");
    assert_eq!(
        out.stdout_str(),
        "Hello from WebAssembly, component!\nargs: p2\n"
    );
    assert_clean(ctd, "rust-p2");
}

fn readonly_rootfs_refuses_writes(ctd: &Containerd) {
    let dir = rootfs(&[("/w.wasm", wat("writefile"))]);
    let out = run_rootfs(ctd, "ro-root", dir.path(), &["--read-only"], &["/w.wasm"]);
    assert_eq!(
        out.code,
        Some(1),
        "write to a read-only rootfs must fail: {out:?}"
    );
    assert!(!dir.path().join("out.txt").exists());
    assert_clean(ctd, "ro-root");
    let out = run_rootfs(ctd, "rw-root", dir.path(), &[], &["/w.wasm"]).ok("ctr run rw");
    assert_eq!(out.code, Some(0));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
        "written\n"
    );
    assert_clean(ctd, "rw-root");
}

fn bind_mounts_are_preopened_ro_or_rw(ctd: &Containerd) {
    let dir = rootfs(&[("/w.wasm", wat("writemount"))]);
    let data = tempfile::tempdir().unwrap();
    let src = data.path().to_string_lossy().into_owned();
    let ro = format!("type=bind,src={src},dst=/data,options=rbind:ro");
    let out = run_rootfs(ctd, "mount-ro", dir.path(), &["--mount", &ro], &["/w.wasm"]);
    assert_eq!(
        out.code,
        Some(1),
        "write to a ro bind mount must fail: {out:?}"
    );
    assert!(!data.path().join("out.txt").exists());
    assert_clean(ctd, "mount-ro");
    let rw = format!("type=bind,src={src},dst=/data,options=rbind:rw");
    run_rootfs(ctd, "mount-rw", dir.path(), &["--mount", &rw], &["/w.wasm"]).ok("ctr run rw mount");
    assert_eq!(
        std::fs::read_to_string(data.path().join("out.txt")).unwrap(),
        "written\n"
    );
    assert_clean(ctd, "mount-rw");
}

/// `ctr run` of a wasm-layer image fails in ctr itself, before any shim is called, with a
/// message of each version's own (the README's image-form table): 1.6.20 cannot unpack the
/// layers, 2.3.4 does not read the wasm config media type. Containers made through
/// containerd's API (CRI, the tests above) run such images.
fn wasm_layer_image_with_ctr_run(ctd: &Containerd) {
    let name = "docker.io/wasmlet/hello-layer-ctr:e2e";
    import_image(
        ctd,
        ns(ctd),
        &wasm_layer_image(name, &[("/hello.wasm", wat("hello"))]),
    );
    let out = ctd.ctr(
        ns(ctd),
        &["run", "--rm", "--runtime", rt(ctd), name, "layer-ctr-run"],
    );
    let expected = match ctd.flavour.config_version {
        2 => "ctr: mismatched image rootfs and manifest layers",
        _ => "ctr: unknown image config media type application/vnd.wasm.config.v0+json",
    };
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains(expected), "{out:?}");
    assert_clean(ctd, "layer-ctr-run");
    ctd.ctr(ns(ctd), &["image", "rm", name]).ok("ctr image rm");
}
