//! `wasmlet-oci build`: pack WebAssembly modules (and extra files) into an OCI image layout
//! tarball that `ctr image import` accepts.
//!
//! ```text
//! wasmlet-oci build -t docker.io/you/hello:v1 -o hello.tar hello.wasm
//! wasmlet-oci build -t NAME -o OUT.tar [--wasm-layers] [--entrypoint PATH]... [--env K=V]...
//!                   [--workdir DIR] [--platform OS/ARCH] [--add HOST:GUEST]... MODULE[:GUEST]...
//! wasmlet-oci build --push REF [--plain-http] [--user USER:PASSWORD] [-o OUT.tar] ...
//! wasmlet-oci build --push REF --index [--platform OS/ARCH] ... MODULE[:GUEST]...
//! ```
//!
//! `--push REF` uploads the image to a registry (the OCI distribution API) as `REF`
//! (`-t` defaults to it); credentials from `--user`, else the Docker config's entry for the
//! registry, else none. `--plain-http` for a registry without TLS. With `--index`, the push
//! is an image index of both forms of the same modules: the rootfs image for `linux/<arch>`
//! (this host's, or `--platform`) and the wasm-layer image for `wasip1/wasm` (`wasip2/wasm`
//! with a component); each node pulls the entry for its platform.
//!
//! Modules land at `/<file name>` unless `:GUEST` says where; the first module is the
//! entrypoint unless `--entrypoint` is given. With `--entrypoint`, modules are optional: an
//! image of `--add`ed native files (the node-installer image). `--wasm-layers` writes the CNCF wasm artifact
//! form (each module a layer) instead of a rootfs layer.

use std::process::ExitCode;

use wasmlet_oci::image::{write_layout, Form, ImageSpec};
use wasmlet_oci::registry::{push, push_index, PushOptions};

const USAGE: &str = "usage: wasmlet-oci build (-t NAME -o OUT.tar | --push REF [--plain-http] \
[--user USER:PASSWORD] [--index]) [--wasm-layers] [--entrypoint ARG]... [--env K=V]... [--workdir DIR] \
[--platform OS/ARCH] [--add HOST:GUEST]... MODULE[:GUEST]...";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wasmlet-oci: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `HOST[:GUEST]`, GUEST defaulting to `/<file name of HOST>`.
fn host_guest(arg: &str) -> Result<(String, String), String> {
    let (host, guest) = match arg.rsplit_once(':') {
        Some((h, g)) if g.starts_with('/') => (h.to_string(), g.to_string()),
        _ => {
            let name = std::path::Path::new(arg)
                .file_name()
                .ok_or_else(|| format!("{arg:?} names no file"))?;
            (arg.to_string(), format!("/{}", name.to_string_lossy()))
        }
    };
    Ok((host, guest))
}

fn run(args: &[String]) -> Result<String, String> {
    let mut it = args.iter();
    if it.next().map(String::as_str) != Some("build") {
        return Err(USAGE.into());
    }
    let (mut name, mut out, mut push_ref) = (None, None, None);
    let mut push_opts = PushOptions::default();
    let mut index = false;
    let mut spec = ImageSpec::new("");
    let mut modules = Vec::new();
    let mut extra = Vec::new();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{arg} needs a value"))
        };
        match arg.as_str() {
            "-t" | "--tag" => name = Some(value()?),
            "-o" | "--output" => out = Some(value()?),
            "--wasm-layers" => spec.form = Form::WasmLayers,
            "--entrypoint" => spec.entrypoint.push(value()?),
            "--env" => spec.env.push(value()?),
            "--workdir" => spec.workdir = Some(value()?),
            "--platform" => {
                let v = value()?;
                let (os, arch) = v.split_once('/').ok_or("--platform takes OS/ARCH")?;
                spec.os = os.into();
                spec.architecture = arch.into();
            }
            "--add" => extra.push(host_guest(&value()?)?),
            "--push" => push_ref = Some(value()?),
            "--plain-http" => push_opts.plain_http = true,
            "--index" => index = true,
            "--user" => {
                let v = value()?;
                let (u, p) = v.split_once(':').ok_or("--user takes USER:PASSWORD")?;
                push_opts.credentials = Some((u.into(), p.into()));
            }
            "-h" | "--help" => return Ok(USAGE.into()),
            flag if flag.starts_with('-') => return Err(format!("unknown flag {flag}\n{USAGE}")),
            module => modules.push(host_guest(module)?),
        }
    }
    let name = name
        .or_else(|| push_ref.clone())
        .ok_or("-t NAME is required")?;
    if out.is_none() && push_ref.is_none() {
        return Err("-o OUT.tar (or --push REF) is required".into());
    }
    // Without a module, an image of `--add`ed files with an explicit entrypoint (a
    // native image: the pause or node-installer image).
    if modules.is_empty() && (spec.entrypoint.is_empty() || spec.form == Form::WasmLayers) {
        return Err(format!("no module given\n{USAGE}"));
    }
    spec.name = name;
    if spec.entrypoint.is_empty() && spec.form == Form::Rootfs {
        spec.entrypoint = vec![modules[0].1.clone()];
    }
    if index && (push_ref.is_none() || spec.form == Form::WasmLayers || !extra.is_empty()) {
        return Err(
            "--index pushes both forms of the same modules: it needs --push, \
                    and takes neither --wasm-layers nor --add"
                .into(),
        );
    }
    if spec.form == Form::WasmLayers && !extra.is_empty() {
        return Err("--add is for rootfs images; wasm-layer images hold modules only".into());
    }
    for (host, guest) in modules.iter().chain(&extra) {
        let data = std::fs::read(host).map_err(|e| format!("reading {host}: {e}"))?;
        spec = spec.file(guest, data, 0o755);
    }
    let mut done = Vec::new();
    if let Some(out) = out {
        let file = std::fs::File::create(&out).map_err(|e| format!("creating {out}: {e}"))?;
        let written =
            write_layout(&spec, std::io::BufWriter::new(file)).map_err(|e| e.to_string())?;
        done.push(format!(
            "wrote {out}: {} manifest {}",
            spec.name, written.manifest
        ));
    }
    if let (Some(reference), true) = (&push_ref, index) {
        let mut layers = spec.clone();
        layers.form = Form::WasmLayers;
        let digest =
            push_index(&[spec, layers], reference, &push_opts).map_err(|e| e.to_string())?;
        done.push(format!("pushed {reference}: index {digest}"));
    } else if let Some(reference) = push_ref {
        let written = push(&spec, &reference, &push_opts).map_err(|e| e.to_string())?;
        done.push(format!("pushed {reference}: manifest {}", written.manifest));
    }
    Ok(done.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn guest_path_defaults_to_the_file_name() {
        assert_eq!(
            host_guest("dir/app.wasm").unwrap(),
            ("dir/app.wasm".to_string(), "/app.wasm".to_string())
        );
        assert_eq!(
            host_guest("dir/app.wasm:/srv/app.wasm").unwrap(),
            ("dir/app.wasm".to_string(), "/srv/app.wasm".to_string())
        );
    }

    #[test]
    fn builds_both_forms_and_refuses_bad_usage() {
        let d = tempfile::tempdir().unwrap();
        let module = d.path().join("m.wasm");
        std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
        let (m, out) = (module.to_string_lossy(), d.path().join("o.tar"));
        let o = out.to_string_lossy();
        let msg = run(&args(&["build", "-t", "x/y:z", "-o", &o, &m])).unwrap();
        assert!(msg.contains("x/y:z"), "{msg}");
        let names: Vec<String> = tar::Archive::new(std::fs::File::open(&out).unwrap())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().any(|n| n == "manifest.json"), "{names:?}");
        run(&args(&[
            "build",
            "--wasm-layers",
            "-t",
            "x/y:z",
            "-o",
            &o,
            &m,
        ]))
        .unwrap();
        assert!(run(&args(&["build", "-o", &o, &m]))
            .unwrap_err()
            .contains("-t NAME"));
        assert!(run(&args(&["build", "-t", "a:b", &m]))
            .unwrap_err()
            .contains("--push REF"));
        let err = run(&args(&[
            "build",
            "--push",
            "127.0.0.1:1/a:b",
            "--plain-http",
            &m,
        ]));
        assert!(err.unwrap_err().contains("registry 127.0.0.1:1/a:b: "));
        assert!(run(&args(&["build", "-t", "a:b", "-o", &o]))
            .unwrap_err()
            .contains("no module"));
        assert!(run(&args(&["push"])).unwrap_err().contains("usage"));
        for bad in [
            &["build", "-t", "a:b", "-o", &o, "--index", &m][..],
            &["build", "--push", "r/a:b", "--index", "--wasm-layers", &m],
            &[
                "build",
                "--push",
                "r/a:b",
                "--index",
                "--add",
                &format!("{m}:/x"),
                &m,
            ],
        ] {
            assert!(run(&args(bad)).unwrap_err().contains("--index"), "{bad:?}");
        }
        let native = run(&args(&[
            "build",
            "-t",
            "a:b",
            "-o",
            &o,
            "--entrypoint",
            "/bin/sh",
            "--add",
            &format!("{m}:/bin/sh"),
        ]));
        assert!(native.is_ok(), "{native:?}");
        let text = d.path().join("t.wasm");
        std::fs::write(&text, b"hello").unwrap();
        let err = run(&args(&[
            "build",
            "--wasm-layers",
            "-t",
            "a:b",
            "-o",
            &o,
            &text.to_string_lossy(),
        ]))
        .unwrap_err();
        assert!(err.contains("not a WebAssembly file"), "{err}");
    }
}
