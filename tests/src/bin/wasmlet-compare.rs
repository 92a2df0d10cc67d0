//! `make compare`: each engine's shim against that engine's own CLI, on a set of WASI
//! programs (the `.wat` fixtures), with the same module, args, env and directory as `/`.
//!
//! For every program and engine it runs the container through a private containerd (the
//! newest here) and the CLI on a copy of the same rootfs, then compares stdout, the exit
//! code, whether stderr is empty, and the files the program left in its root. A difference
//! that is known and explained (a CLI's own convention, such as the exit code of a trap) is
//! listed in `KNOWN` with the reason and printed as such; any other difference fails the run.
//! A CLI that is not given (`COMPARE_<ENGINE>=path`) is reported as not compared, by name.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use wasmlet_tests::cmd::{run, Output};
use wasmlet_tests::containerd::{unavailable_reason, Containerd, Options};
use wasmlet_tests::fixtures::{rootfs, wat};

/// A WASI program: its fixture, its args after argv[0], extra env, and the file in its root
/// whose content is compared afterwards (if any).
struct Program {
    fixture: &'static str,
    args: &'static [&'static str],
    env: &'static [&'static str],
    file: Option<&'static str>,
}

const PROGRAMS: &[Program] = &[
    Program {
        fixture: "hello",
        args: &[],
        env: &[],
        file: None,
    },
    Program {
        fixture: "argsenv",
        args: &["one", "two words", ""],
        env: &["A=1", "B=x=y", "A=2"],
        file: None,
    },
    Program {
        fixture: "exit42",
        args: &[],
        env: &[],
        file: None,
    },
    Program {
        fixture: "trap",
        args: &[],
        env: &[],
        file: None,
    },
    Program {
        fixture: "readfile",
        args: &["data.txt"],
        env: &[],
        file: None,
    },
    Program {
        fixture: "readfile",
        args: &["missing.txt"],
        env: &[],
        file: None,
    },
    Program {
        fixture: "writefile",
        args: &[],
        env: &[],
        file: Some("out.txt"),
    },
    Program {
        fixture: "sockshut",
        args: &[],
        env: &[],
        file: None,
    },
    Program {
        fixture: "isatty",
        args: &[],
        env: &[],
        file: None,
    },
    Program {
        fixture: "readfile",
        args: &["../../data.txt"],
        env: &[],
        file: None,
    },
    Program {
        fixture: "wasix",
        args: &[],
        env: &[],
        file: None,
    },
    Program {
        fixture: "wasixthread",
        args: &[],
        env: &[],
        file: Some("thread.txt"),
    },
];

/// What one run gave: stdout without the engine's own timestamped log lines (WasmEdge logs
/// a trap there, in the CLI and the shim alike), the exit code, whether the program wrote
/// to stderr (ctr's own warnings left out), and the compared file.
#[derive(Debug, PartialEq)]
struct Seen {
    stdout: String,
    code: Option<i32>,
    stderr_empty: bool,
    file: Option<String>,
}

/// A line the engine's logger wrote (`[2026-11-29 16:32:55.293] [error] ...`) or ctr's
/// (`time="..." level=warning ...`), not the program.
fn log_line(line: &str) -> bool {
    let b = line.as_bytes();
    (b.len() > 11 && b[0] == b'[' && b[1..5].iter().all(u8::is_ascii_digit) && b[5] == b'-')
        || line.starts_with("time=\"")
}

fn program_text(text: &str) -> String {
    text.lines()
        .filter(|l| !log_line(l))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// An engine: its runtime, and how its CLI maps a directory to `/` and passes env and args.
struct Engine {
    name: &'static str,
    runtime: &'static str,
    shim: &'static str,
    /// The variable naming its CLI, and how to get one.
    cli_var: &'static str,
    cli_how: &'static str,
    cli: fn(&Path, &Path, &[String], &[String]) -> Command,
}

const ENGINES: &[Engine] = &[
    Engine {
        name: "wasmtime",
        runtime: "io.containerd.wasmtime.v1",
        shim: "containerd-shim-wasmtime-v1",
        cli_var: "COMPARE_WASMTIME",
        cli_how: "`make compare` installs wasmtime-cli 48.0.8",
        cli: |cli, root, env, args| {
            let mut c = Command::new(cli);
            c.args(["run", "--argv0", "/m.wasm", "--dir"])
                .arg(format!("{}::/", root.display()));
            for e in env {
                c.args(["--env", e]);
            }
            c.arg(root.join("m.wasm")).args(args);
            c
        },
    },
    Engine {
        name: "wasmer",
        runtime: "io.containerd.wasmer.v1",
        shim: "containerd-shim-wasmer-v1",
        cli_var: "COMPARE_WASMER",
        cli_how: "`make compare` installs wasmer-cli 7.4.2 (singlepass)",
        cli: |cli, root, env, args| {
            let mut c = Command::new(cli);
            c.args(["run", "--singlepass", "--volume"])
                .arg(format!("{}:/", root.display()));
            for e in env {
                c.args(["--env", e]);
            }
            c.arg(root.join("m.wasm")).arg("--").args(args);
            c
        },
    },
    Engine {
        name: "wasmedge",
        runtime: "io.containerd.wasmedge.v1",
        shim: "containerd-shim-wasmedge-v1",
        cli_var: "COMPARE_WASMEDGE",
        cli_how: "the WasmEdge build of ../shared (`make compare` finds it)",
        cli: |cli, root, env, args| {
            let mut c = Command::new(cli);
            c.arg("--dir").arg(format!("/:{}", root.display()));
            for e in env {
                c.args(["--env", e]);
            }
            c.arg(root.join("m.wasm")).args(args);
            c
        },
    },
    Engine {
        name: "wamr",
        runtime: "io.containerd.wamr.v1",
        shim: "containerd-shim-wamr-v1",
        cli_var: "COMPARE_IWASM",
        cli_how: "WAMR's `iwasm` is built only from WAMR's git repository (product-mini), \
                  which is not reachable here",
        cli: |cli, root, env, args| {
            let mut c = Command::new(cli);
            c.arg(format!("--map-dir=/::{}", root.display()));
            for e in env {
                c.arg(format!("--env={e}"));
            }
            c.arg(root.join("m.wasm")).args(args);
            c
        },
    },
];

/// Differences that are the CLI's convention and not the WASI a module sees; each with why.
const KNOWN: &[(&str, &str, &str)] = &[
    (
        "wasmer",
        "trap",
        "a trap: the shim ends the container 134 (SIGABRT's 128+6) as for every engine and as \
         Wasmtime's and WasmEdge's CLIs do; Wasmer's CLI exits 1",
    ),
    (
        "wasmer",
        "writefile",
        "Wasmer's CLI keeps what a module writes under `--volume DIR:/` in its own in-memory \
         root: the file never reaches DIR (the module sees success); the shim writes to the \
         container's filesystem, as every engine does",
    ),
    (
        "wasmer",
        "wasixthread",
        "the file the thread writes: as for writefile, Wasmer's CLI keeps it in memory; the \
         output (the file read back inside the module) is the same",
    ),
    (
        "*",
        "argsenv",
        "argv[0] is the path the CLI was given (the host path of the module) where the CLI \
         has no --argv0; in the container it is process.args[0]",
    ),
    (
        "wasmedge",
        "trap",
        "a trap: the shim writes the trap's message to stderr, as for every engine; \
         WasmEdge's CLI only logs it (on stdout, which both show)",
    ),
    (
        "*",
        "wasix",
        "only Wasmer runs WASIX: the other shims refuse the module at Create with a message \
         naming the Wasmer shim, where their CLIs fail to link it",
    ),
];

fn known(engine: &str, fixture: &str) -> Option<&'static str> {
    KNOWN
        .iter()
        .find(|(e, f, _)| (*e == "*" || *e == engine) && fixture.starts_with(f))
        .map(|(_, _, why)| *why)
}

fn seen(out: Output, root: &Path, file: Option<&str>) -> Seen {
    Seen {
        stdout: program_text(&out.stdout_str()),
        code: out.code,
        stderr_empty: program_text(&out.stderr).trim().is_empty(),
        file: file.map(|f| std::fs::read_to_string(root.join(f)).unwrap_or_default()),
    }
}

/// A rootfs holding the program as /m.wasm and a data file.
fn program_root(p: &Program) -> tempfile::TempDir {
    rootfs(&[
        ("/m.wasm", wat(p.fixture)),
        ("/data.txt", b"some data\n".to_vec()),
    ])
}

fn in_container(ctd: &Containerd, e: &Engine, p: &Program, id: &str) -> Seen {
    let root = program_root(p);
    let dir = root.path().to_string_lossy().to_string();
    let mut all: Vec<String> = ["run", "--rm", "--runtime", e.runtime]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for env in p.env {
        all.push("--env".into());
        all.push(env.to_string());
    }
    all.extend(["--rootfs".into(), dir, id.into()]);
    all.push("/m.wasm".into());
    all.extend(p.args.iter().map(|a| a.to_string()));
    let args: Vec<&str> = all.iter().map(String::as_str).collect();
    let out = ctd.ctr_timeout(&ctd.ns, &args, Some(b""), Duration::from_secs(60));
    let _ = ctd.ctr(&ctd.ns, &["container", "rm", id]);
    seen(out, root.path(), p.file)
}

fn in_cli(cli: &Path, e: &Engine, p: &Program) -> Seen {
    let root = program_root(p);
    // `ctr run --rootfs` adds no env of its own: the spec's env is the program's.
    let env: Vec<String> = p.env.iter().map(|s| s.to_string()).collect();
    let args: Vec<String> = p.args.iter().map(|s| s.to_string()).collect();
    let mut cmd = (e.cli)(cli, root.path(), &env, &args);
    cmd.current_dir(root.path());
    let out = run(&mut cmd, Some(b""), Duration::from_secs(60));
    seen(out, root.path(), p.file)
}

fn main() {
    let opts = Options::newest_first()
        .into_iter()
        .find(|o| unavailable_reason(o).is_none())
        .unwrap_or_else(|| {
            eprintln!("no containerd to run the shims: `make test` prepares one (as root)");
            std::process::exit(2)
        });
    let ctd = Containerd::start(&opts).unwrap_or_else(|e| {
        eprintln!("starting containerd: {e}");
        std::process::exit(2)
    });
    println!(
        "containerd {}: each shim against its engine's CLI\n",
        ctd.flavour.name
    );
    let mut unexplained = 0;
    for (n, e) in ENGINES.iter().enumerate() {
        if !opts.shim_dir.join(e.shim).exists() {
            println!("{}: not compared: {} is not built", e.name, e.shim);
            continue;
        }
        let Some(cli) = std::env::var_os(e.cli_var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
        else {
            println!(
                "{}: not compared: no CLI ({}; set {})",
                e.name, e.cli_how, e.cli_var
            );
            continue;
        };
        println!("{} (CLI {}):", e.name, cli.display());
        for (i, p) in PROGRAMS.iter().enumerate() {
            let shim = in_container(&ctd, e, p, &format!("cmp-{n}-{i}"));
            let theirs = in_cli(&cli, e, p);
            let label = format!("{} {}", p.fixture, p.args.join(" "));
            if shim == theirs {
                println!("  same       {label}");
                continue;
            }
            match known(e.name, p.fixture) {
                Some(why) => println!("  known      {label}: {why}"),
                None => {
                    unexplained += 1;
                    println!("  DIFFERENT  {label}");
                }
            }
            println!("               shim: {shim:?}\n               cli:  {theirs:?}");
        }
    }
    // Stop containerd (its Drop) before exiting: `exit` runs no destructors.
    drop(ctd);
    if unexplained > 0 {
        println!("\n{unexplained} difference(s) not explained");
        std::process::exit(1);
    }
}
