//! critest, the CRI validation suite of cri-tools (from `../shared`), run against a private
//! containerd's CRI plugin with a runtime handler, and its JUnit report read back.
//!
//! critest's images cannot be pulled here: `../shared/cri-tools/images/build.sh` builds
//! stand-ins under their exact names from Debian's busybox, and they are imported before the
//! run. The image-pull tests are skipped (no registry).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cmd::run;
use crate::containerd::Containerd;

/// Where `make` unpacks cri-tools 1.36.0 from `../shared`.
pub const SHARED_CRI_TOOLS: &str = "shared/cri-tools-1.36.0";
/// The sandbox image critest's stand-ins provide (containerd 2.3.4's default).
pub const SANDBOX_IMAGE: &str = "registry.k8s.io/pause:3.10.2";
/// What critest cannot do without a registry.
pub const SKIP: &str = r"\[k8s.io\] Image ";
/// The host-port mapping test: CNI's portmap plumbing, the same whatever the handler, and
/// a known failure on these machines' loopback network (it waits 60 s for runc as well).
/// Runs for the first engine; the others leave it out (see `tests/conformance.rs`).
pub const HOST_PORT: &str = r"port mapping with host port and container port";

/// The `critest` binary: `WASMLET_CRI_TOOLS` (a directory with `bin/critest`), else what
/// `make` unpacked.
pub fn binary() -> PathBuf {
    std::env::var_os("WASMLET_CRI_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::target_dir().join(SHARED_CRI_TOOLS))
        .join("bin/critest")
}

/// The script that builds critest's images: `../shared/cri-tools/images/build.sh`.
pub fn image_builder() -> PathBuf {
    std::env::var_os("WASMLET_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("../shared"))
        .join("cri-tools/images/build.sh")
}

/// Why critest cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    let how = "critest comes from ../shared/cri-tools (cri-tools 1.36.0), which `make test` \
               unpacks when ../shared is beside the project; or set WASMLET_CRI_TOOLS to a \
               directory with bin/critest and WASMLET_SHARED to the shared folder";
    if !binary().exists() {
        return Some(format!("{} missing: {how}", binary().display()));
    }
    if !image_builder().exists() {
        return Some(format!("{} missing: {how}", image_builder().display()));
    }
    None
}

/// Build critest's images (once; kept under the target directory) and import them into
/// CRI's namespace of `ctd`.
pub fn import_images(ctd: &Containerd) -> Result<(), String> {
    let dir = crate::target_dir().join("critest-images");
    let done = dir.join(".built");
    if !done.exists() {
        let out = run(
            Command::new(image_builder()).arg(&dir),
            None,
            Duration::from_secs(300),
        );
        if out.code != Some(0) {
            return Err(format!("building critest's images: {out:?}"));
        }
        std::fs::write(&done, b"").map_err(|e| e.to_string())?;
    }
    let mut archives: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tar"))
        .collect();
    archives.sort();
    for archive in archives {
        let path = archive.to_string_lossy().into_owned();
        let out = ctd.ctr_timeout(
            "k8s.io",
            &["images", "import", "--all-platforms", &path],
            None,
            Duration::from_secs(120),
        );
        if out.code != Some(0) {
            return Err(format!("importing {path}: {out:?}"));
        }
    }
    Ok(())
}

/// How one critest test ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed(String),
    Skipped,
}

/// critest's results, by test name.
#[derive(Debug, Default)]
pub struct Report {
    pub tests: BTreeMap<String, Outcome>,
}

impl Report {
    /// Read a JUnit report as ginkgo writes it.
    pub fn parse(xml: &str) -> Result<Report, String> {
        let doc = roxmltree::Document::parse(xml).map_err(|e| e.to_string())?;
        let mut tests = BTreeMap::new();
        for case in doc.descendants().filter(|n| n.has_tag_name("testcase")) {
            // ginkgo names tests "[It] [k8s.io] ..."; its suite-level nodes
            // ("[BeforeSuite]"...) are not tests.
            let name = case.attribute("name").unwrap_or_default();
            let name = name.strip_prefix("[It] ").unwrap_or(name);
            if !name.starts_with("[k8s.io]") {
                continue;
            }
            let child = |tag: &str| case.children().find(|c| c.has_tag_name(tag));
            let outcome = if let Some(f) = child("failure").or_else(|| child("error")) {
                let message = f
                    .attribute("message")
                    .map(str::to_string)
                    .or_else(|| f.text().map(str::to_string))
                    .unwrap_or_default();
                Outcome::Failed(message)
            } else if child("skipped").is_some() || case.attribute("status") == Some("skipped") {
                Outcome::Skipped
            } else {
                Outcome::Passed
            };
            tests.insert(name.to_string(), outcome);
        }
        Ok(Report { tests })
    }

    pub fn count(&self, want: fn(&Outcome) -> bool) -> usize {
        self.tests.values().filter(|o| want(o)).count()
    }

    pub fn failed(&self) -> Vec<(&str, &str)> {
        self.tests
            .iter()
            .filter_map(|(n, o)| match o {
                Outcome::Failed(m) => Some((n.as_str(), m.as_str())),
                _ => None,
            })
            .collect()
    }

    pub fn passed(&self, name: &str) -> bool {
        self.tests.get(name) == Some(&Outcome::Passed)
    }
}

/// Run critest against `ctd`'s CRI socket with runtime handler `handler`, writing its JUnit
/// report and output into `dir`; `timeout` bounds the whole run. `skip` adds ginkgo skip
/// patterns to [`SKIP`].
pub fn run_suite(
    ctd: &Containerd,
    handler: &str,
    dir: &Path,
    timeout: Duration,
    skip: &[&str],
) -> Result<Report, String> {
    let skip = std::iter::once(SKIP)
        .chain(skip.iter().copied())
        .collect::<Vec<_>>()
        .join("|");
    let endpoint = format!("unix://{}", ctd.address.display());
    let junit = dir.join(format!("critest-{handler}.xml"));
    let mut cmd = Command::new(binary());
    cmd.arg("-runtime-endpoint")
        .arg(&endpoint)
        .arg("-image-endpoint")
        .arg(&endpoint)
        .arg("-runtime-handler")
        .arg(handler)
        .arg(format!("-ginkgo.skip={skip}"))
        .arg(format!("-ginkgo.junit-report={}", junit.display()))
        .arg("-ginkgo.no-color")
        .current_dir(dir);
    let out = run(&mut cmd, None, timeout);
    std::fs::write(dir.join(format!("critest-{handler}.log")), &out.stdout)
        .map_err(|e| e.to_string())?;
    if out.timed_out {
        return Err(format!(
            "critest ran over {timeout:?} (output in {})",
            dir.display()
        ));
    }
    let xml = std::fs::read_to_string(&junit).map_err(|e| {
        format!(
            "{}: {e} (critest exit {:?}: {})",
            junit.display(),
            out.code,
            out.stderr
        )
    })?;
    Report::parse(&xml)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_of_ginkgo_is_read() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="4" disabled="0" errors="0" failures="1" time="10">
  <testsuite name="CRI validation" tests="4" failures="1" errors="0" skipped="1">
    <testcase name="[BeforeSuite]" classname="CRI validation" status="passed" time="0"></testcase>
    <testcase name="[It] [k8s.io] Container runtime should support basic operations on container runtime should support creating container [Conformance]" status="passed" time="1"></testcase>
    <testcase name="[It] [k8s.io] Streaming runtime should support attach [Conformance]" status="failed" time="2">
      <failure message="Expected hello" type="failed">stack</failure>
    </testcase>
    <testcase name="[It] [k8s.io] Container Mount Readonly runtime should support recursive readonly mounts" status="skipped" time="0">
      <skipped message="skipped"></skipped>
    </testcase>
  </testsuite>
</testsuites>"#;
        let r = Report::parse(xml).unwrap();
        assert_eq!(r.tests.len(), 3);
        assert_eq!(r.count(|o| *o == Outcome::Passed), 1);
        assert_eq!(r.count(|o| *o == Outcome::Skipped), 1);
        assert_eq!(
            r.failed(),
            [(
                "[k8s.io] Streaming runtime should support attach [Conformance]",
                "Expected hello"
            )]
        );
    }
}
