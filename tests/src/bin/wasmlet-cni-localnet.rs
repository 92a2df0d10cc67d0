//! A chained CNI plugin for the e2e harness's pod network only (never for a real cluster):
//! it makes a bridge network in the loopback range (127.x.0.0/24, the only range the test
//! machines may use) reachable between the host and its pods.
//!
//! Linux treats all of 127.0.0.0/8 as local: one `local` route in the `local` routing table,
//! on the host and in every pod's network namespace, and packets with 127/8 addresses are
//! dropped on other interfaces. On ADD, after `bridge` and `host-local`, this plugin:
//! - on the host: gives the bridge the network's gateway address, allows 127/8 on it
//!   (`route_localnet`) and routes the subnet through it in the `local` table (a /24 beats
//!   the /8);
//! - in the pod's namespace: the same for its interface, with the pod's address as source.
//!
//! Its config: `{"type": "wasmlet-cni-localnet", "bridge": ..., "subnet": ...,
//! "gateway": ...}`; the pod's address comes from `prevResult`, which it passes on. DEL and
//! CHECK have nothing to do: the pod's routes go with its namespace, the host's with the
//! bridge (the harness deletes it).

use std::io::Read;
use std::process::Command;

use serde_json::{json, Value};

fn main() {
    let mut input = String::new();
    let result = std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| format!("reading the config: {e}"))
        .and_then(|_| run(&input));
    match result {
        Ok(out) => println!("{out}"),
        Err(msg) => {
            println!(
                "{}",
                json!({"cniVersion": "1.0.0", "code": 999, "msg": msg})
            );
            std::process::exit(1);
        }
    }
}

fn run(input: &str) -> Result<Value, String> {
    let command = std::env::var("CNI_COMMAND").unwrap_or_default();
    if command == "VERSION" {
        return Ok(json!({"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0"]}));
    }
    let config: Value = serde_json::from_str(input).map_err(|e| format!("bad config: {e}"))?;
    let field = |name: &str| {
        config[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("config has no {name:?}"))
    };
    let mut prev = config["prevResult"].clone();
    if command != "ADD" {
        return Ok(if prev.is_null() { json!({}) } else { prev });
    }
    let (bridge, subnet, gateway) = (field("bridge")?, field("subnet")?, field("gateway")?);
    let netns = std::env::var("CNI_NETNS").map_err(|_| "CNI_NETNS unset".to_string())?;
    let ifname = std::env::var("CNI_IFNAME").map_err(|_| "CNI_IFNAME unset".to_string())?;
    let pod_ip = prev["ips"][0]["address"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .ok_or("prevResult has no pod address")?
        .to_string();

    ip(&["addr", "replace", &format!("{gateway}/32"), "dev", &bridge])?;
    route_localnet(&bridge)?;
    ip(&[
        "route", "replace", &subnet, "dev", &bridge, "table", "local", "src", &gateway,
    ])?;

    let ns = std::fs::File::open(&netns).map_err(|e| format!("opening {netns}: {e}"))?;
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("entering {netns}: {e}"))?;
    route_localnet(&ifname)?;
    ip(&[
        "route", "replace", &subnet, "dev", &ifname, "table", "local", "src", &pod_ip,
    ])?;

    prev["cniVersion"] = config["cniVersion"].clone();
    Ok(prev)
}

fn route_localnet(dev: &str) -> Result<(), String> {
    let path = format!("/proc/sys/net/ipv4/conf/{dev}/route_localnet");
    std::fs::write(&path, "1").map_err(|e| format!("writing {path}: {e}"))
}

fn ip(args: &[&str]) -> Result<(), String> {
    let bin = ["/usr/sbin/ip", "/sbin/ip"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("ip");
    let out = Command::new(bin)
        .args(args)
        .output()
        .map_err(|e| format!("running ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
