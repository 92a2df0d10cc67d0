//! `linux.seccomp` as a libseccomp filter. Syscall names this libseccomp does not know are
//! skipped (as runc does: profiles list syscalls of newer kernels); anything else the filter
//! cannot express is an error naming the field.

use std::str::FromStr;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};

use crate::error::{Error, Result};

/// The actions a profile may use (SCMP_ACT_NOTIFY needs an agent and is refused).
pub const ACTIONS: [LinuxSeccompAction; 8] = [
    LinuxSeccompAction::ScmpActKill,
    LinuxSeccompAction::ScmpActKillProcess,
    LinuxSeccompAction::ScmpActKillThread,
    LinuxSeccompAction::ScmpActTrap,
    LinuxSeccompAction::ScmpActErrno,
    LinuxSeccompAction::ScmpActTrace,
    LinuxSeccompAction::ScmpActAllow,
    LinuxSeccompAction::ScmpActLog,
];
/// The argument comparisons a profile may use.
pub const OPERATORS: [&str; 7] = [
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];
/// The filter flags a profile may name.
pub const KNOWN_FLAGS: [&str; 4] = [
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];
/// The flags that take effect (TSYNC trivially: the filter is loaded single-threaded).
pub const SUPPORTED_FLAGS: [&str; 3] = [
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
];

fn invalid(message: impl std::fmt::Display) -> Error {
    Error::SpecInvalid {
        field: "linux.seccomp".into(),
        message: message.to_string(),
    }
}

/// The serde name of a spec enum value (`SCMP_ACT_ERRNO`).
fn name_of<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction> {
    let name = name_of(&a);
    let value = match a {
        LinuxSeccompAction::ScmpActErrno => Some(errno.unwrap_or(libc::EPERM as u32) as i32),
        LinuxSeccompAction::ScmpActTrace => Some(errno.unwrap_or(libc::EPERM as u32) as i32),
        _ => None,
    };
    if a == LinuxSeccompAction::ScmpActNotify {
        return Err(invalid(
            "SCMP_ACT_NOTIFY needs a seccomp agent, which wasmlet does not support",
        ));
    }
    ScmpAction::from_str(&name, value).map_err(|e| invalid(format!("action {name}: {e}")))
}

fn compare(
    op: LinuxSeccompOperator,
    value: u64,
    value_two: Option<u64>,
) -> Result<(ScmpCompareOp, u64)> {
    Ok(match op {
        // For a masked comparison the spec's value is the mask and valueTwo the datum.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            (ScmpCompareOp::MaskedEqual(value), value_two.unwrap_or(0))
        }
        other => {
            let name = name_of(&other);
            let op = ScmpCompareOp::from_str(&name)
                .map_err(|e| invalid(format!("operator {name}: {e}")))?;
            (op, value)
        }
    })
}

/// Build the filter for `seccomp`. `nnp` is whether the process sets no_new_privileges itself
/// (libseccomp would otherwise set it on load).
pub fn filter(seccomp: &LinuxSeccomp, nnp: bool) -> Result<ScmpFilterContext> {
    let default = action(seccomp.default_action(), seccomp.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(invalid)?;
    ctx.set_ctl_nnp(nnp).map_err(invalid)?;
    for arch in seccomp.architectures().as_deref().unwrap_or_default() {
        let name = name_of(arch);
        let arch =
            ScmpArch::from_str(&name).map_err(|e| invalid(format!("architecture {name}: {e}")))?;
        ctx.add_arch(arch)
            .map_err(|e| invalid(format!("architecture {name}: {e}")))?;
    }
    for flag in seccomp.flags().as_deref().unwrap_or_default() {
        match name_of(flag).as_str() {
            "SECCOMP_FILTER_FLAG_LOG" => {
                ctx.set_ctl_log(true).map_err(invalid)?;
            }
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => {
                ctx.set_ctl_ssb(true).map_err(invalid)?;
            }
            // libseccomp synchronises threads itself; the workload is single-threaded here.
            _ => {}
        }
    }
    for rule in seccomp.syscalls().as_deref().unwrap_or_default() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            continue;
        }
        let mut conditions = Vec::new();
        for arg in rule.args().as_deref().unwrap_or_default() {
            let (op, datum) = compare(arg.op(), arg.value(), arg.value_two())?;
            conditions.push(ScmpArgCompare::new(arg.index() as u32, op, datum));
        }
        // Several conditions on one argument cannot share a rule: libseccomp would AND them.
        let mut indices: Vec<usize> = rule
            .args()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|a| a.index())
            .collect();
        indices.sort_unstable();
        let repeated = indices.windows(2).any(|w| w[0] == w[1]);
        for name in rule.names() {
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                log::debug!("seccomp: skipping syscall {name:?}, unknown to this libseccomp");
                continue;
            };
            let added = if conditions.is_empty() {
                ctx.add_rule(act, syscall)
            } else if repeated {
                conditions
                    .iter()
                    .try_for_each(|c| {
                        ctx.add_rule_conditional(act, syscall, std::slice::from_ref(c))
                            .map(|_| ())
                    })
                    .map(|_| &mut ctx)
            } else {
                ctx.add_rule_conditional(act, syscall, &conditions)
            };
            added.map_err(|e| invalid(format!("rule for {name}: {e}")))?;
        }
    }
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seccomp(v: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn docker_style_profile_builds() {
        let s = seccomp(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["read", "write", "no_such_syscall_anywhere"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}
            ]
        }));
        let ctx = filter(&s, false).unwrap();
        assert!(!ctx.get_ctl_nnp().unwrap());
        let out = tempfile::tempfile().unwrap();
        ctx.export_bpf(&out).unwrap();
        assert!(out.metadata().unwrap().len() > 0);
    }

    #[test]
    fn every_advertised_action_and_operator_builds() {
        for a in ACTIONS {
            action(a, None).unwrap_or_else(|e| panic!("{a:?}: {e}"));
        }
        for name in OPERATORS {
            let op: LinuxSeccompOperator = serde_json::from_value(name.into()).unwrap();
            compare(op, 1, Some(1)).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for flag in KNOWN_FLAGS {
            let s = seccomp(serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW", "flags": [flag]
            }));
            filter(&s, true).unwrap_or_else(|e| panic!("{flag}: {e}"));
        }
    }

    #[test]
    fn notify_is_refused_by_name() {
        let s = seccomp(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        }));
        let e = filter(&s, true).err().unwrap().to_string();
        assert!(
            e.contains("linux.seccomp") && e.contains("SCMP_ACT_NOTIFY"),
            "{e}"
        );
    }
}
