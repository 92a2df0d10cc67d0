//! Test inputs: the `.wat` fixtures compiled to binary, rootfs directories holding them, and
//! images (built with `wasmlet_oci::image`) imported into the private containerd.

use std::path::{Path, PathBuf};

use wasmlet_oci::image::{write_layout, Form, ImageSpec};

use crate::containerd::Containerd;

/// The binary module for `tests/fixtures/<name>.wat`.
pub fn wat(name: &str) -> Vec<u8> {
    let path = crate::workspace_root()
        .join("tests/fixtures")
        .join(format!("{name}.wat"));
    wat::parse_file(&path).unwrap_or_else(|e| panic!("compiling {}: {e}", path.display()))
}

/// A rootfs directory holding `files` (absolute guest paths), modules executable.
pub fn rootfs(files: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("wasmlet-rootfs-")
        .tempdir()
        .expect("temp rootfs");
    for (guest, data) in files {
        let host = dir.path().join(guest.trim_start_matches('/'));
        std::fs::create_dir_all(host.parent().expect("file has a parent")).unwrap();
        std::fs::write(&host, data).unwrap();
    }
    dir
}

/// Write `spec` as an OCI layout tarball and `ctr image import` it into `ns` (without
/// unpacking it when it is a wasm-layer image, which containerd 1.6 cannot unpack).
pub fn import_image(ctd: &Containerd, ns: &str, spec: &ImageSpec) {
    let tar = ctd
        .dir
        .join(format!("{}.tar", spec.name.replace(['/', ':'], "_")));
    let file = std::fs::File::create(&tar).expect("creating image tar");
    write_layout(spec, std::io::BufWriter::new(file)).expect("writing image");
    let tar = tar.to_string_lossy();
    let args: Vec<&str> = match spec.form {
        Form::Rootfs if spec.os == "linux" => vec!["image", "import", &tar],
        Form::Rootfs => vec!["image", "import", "--all-platforms", &tar],
        Form::WasmLayers => vec!["image", "import", "--no-unpack", "--all-platforms", &tar],
    };
    ctd.ctr(ns, &args).ok("ctr image import");
}

/// An image holding one module at `/app/<name>.wasm` as its entrypoint.
pub fn module_image(name: &str, module: Vec<u8>) -> ImageSpec {
    let path = format!(
        "/app/{}.wasm",
        name.rsplit('/')
            .next()
            .unwrap_or(name)
            .split(':')
            .next()
            .unwrap_or(name)
    );
    let mut spec = ImageSpec::new(name).file(&path, module, 0o755);
    spec.entrypoint = vec![path];
    spec
}

/// A built example program, e.g. `example("wasm32-wasip1", "hello")`.
pub fn example(target: &str, name: &str) -> PathBuf {
    crate::target_dir()
        .join(target)
        .join("release")
        .join(format!("{name}.wasm"))
}

/// Whether `path` exists, with a hint to build it when it does not.
pub fn require(path: &Path) -> Result<(), String> {
    if path.exists() {
        Ok(())
    } else {
        Err(format!(
            "{} missing: run `make examples` first",
            path.display()
        ))
    }
}

/// `module` with a custom section carrying `tag` appended: same behaviour, new content hash
/// (so a new compile-cache entry).
pub fn unique(mut module: Vec<u8>, tag: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"wasmlet-test";
    let mut payload = Vec::new();
    leb(name.len(), &mut payload);
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    module.push(0);
    leb(payload.len(), &mut module);
    module.extend_from_slice(&payload);
    module
}

/// The static pause binary `make examples` builds for this host.
pub fn pause_binary() -> PathBuf {
    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    crate::target_dir().join(triple).join("release/pause")
}

/// The sandbox image CRI containerds use ([`crate::containerd::PAUSE_IMAGE`]): the locally
/// built pause binary.
pub fn pause_image() -> ImageSpec {
    let pause = std::fs::read(pause_binary()).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (built by `make examples`)",
            pause_binary().display()
        )
    });
    let mut image = ImageSpec::new(crate::containerd::PAUSE_IMAGE).file("/pause", pause, 0o755);
    image.entrypoint = vec!["/pause".into()];
    image
}
