//! The task lifecycle as an explicit state machine. Every change of a task's status goes
//! through [`Status::apply`]; an operation that the current status does not allow is an
//! [`IllegalTransition`] naming both (carried by the crate's error as
//! `Error::IllegalTransition`).

use std::fmt;

use containerd_shim::protos::api::Status as ApiStatus;

/// An operation the task's status does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {op} task {id:?}: it is {from}")]
pub struct IllegalTransition {
    pub id: String,
    pub from: Status,
    pub op: Op,
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The workload process exists and waits for Start.
    Created,
    Running,
    Paused,
    /// The workload process has exited; its status is kept until Delete.
    Stopped,
    Deleted,
}

/// What is done to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Start,
    Pause,
    Resume,
    /// Another process is started in the container (changes nothing of the task's own).
    Exec,
    /// The workload process was seen to exit.
    Exit,
    Delete,
}

impl Status {
    /// The status after `op`, or the error that names both.
    pub fn apply(self, op: Op, id: &str) -> Result<Status, IllegalTransition> {
        use Op::*;
        use Status::*;
        let next = match (self, op) {
            (Created, Start) => Running,
            (Running, Pause) => Paused,
            (Paused, Resume) => Running,
            (Created | Running, Exec) => self,
            (Created | Running | Paused, Exit) => Stopped,
            (Created | Stopped, Delete) => Deleted,
            (from, op) => {
                return Err(IllegalTransition {
                    id: id.to_string(),
                    from,
                    op,
                })
            }
        };
        Ok(next)
    }

    /// Whether the workload process may still be running.
    pub fn is_live(self) -> bool {
        matches!(self, Status::Created | Status::Running | Status::Paused)
    }

    /// The status as containerd's API names it.
    pub fn to_api(self) -> ApiStatus {
        match self {
            Status::Created => ApiStatus::CREATED,
            Status::Running => ApiStatus::RUNNING,
            Status::Paused => ApiStatus::PAUSED,
            Status::Stopped | Status::Deleted => ApiStatus::STOPPED,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
            Status::Deleted => "deleted",
        })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Start => "start",
            Op::Pause => "pause",
            Op::Resume => "resume",
            Op::Exec => "exec in",
            Op::Exit => "exit",
            Op::Delete => "delete",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Op::*;
    use Status::*;

    const ALL: [Status; 5] = [Created, Running, Paused, Stopped, Deleted];
    const OPS: [Op; 6] = [Start, Pause, Resume, Exec, Exit, Delete];

    #[test]
    fn the_whole_table() {
        let legal = [
            (Created, Start, Running),
            (Running, Pause, Paused),
            (Paused, Resume, Running),
            (Created, Exec, Created),
            (Running, Exec, Running),
            (Created, Exit, Stopped),
            (Running, Exit, Stopped),
            (Paused, Exit, Stopped),
            (Created, Delete, Deleted),
            (Stopped, Delete, Deleted),
        ];
        for from in ALL {
            for op in OPS {
                let want = legal
                    .iter()
                    .find(|(f, o, _)| *f == from && *o == op)
                    .map(|(_, _, to)| *to);
                match (from.apply(op, "c"), want) {
                    (Ok(got), Some(to)) => assert_eq!(got, to, "{from} {op}"),
                    (Err(IllegalTransition { from: f, op: o, .. }), None) => {
                        assert_eq!((f, o), (from, op))
                    }
                    (got, want) => panic!("{from} {op}: got {got:?}, want {want:?}"),
                }
            }
        }
    }

    #[test]
    fn illegal_transition_names_both_states() {
        let msg = Running.apply(Delete, "web").unwrap_err().to_string();
        assert_eq!(msg, "cannot delete task \"web\": it is running");
        let msg = Stopped.apply(Start, "web").unwrap_err().to_string();
        assert_eq!(msg, "cannot start task \"web\": it is stopped");
        let msg = Paused.apply(Exec, "web").unwrap_err().to_string();
        assert_eq!(msg, "cannot exec in task \"web\": it is paused");
    }

    #[test]
    fn live_states() {
        assert!(Created.is_live() && Running.is_live() && Paused.is_live());
        assert!(!Stopped.is_live() && !Deleted.is_live());
        assert_eq!(Stopped.to_api(), ApiStatus::STOPPED);
    }
}
