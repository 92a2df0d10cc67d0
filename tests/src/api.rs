//! Driving containerd through its gRPC API, for what `ctr` 1.6 cannot do: run a container
//! whose image was imported without unpacking (wasm-layer images), as CRI and other API
//! clients do.

use std::path::{Path, PathBuf};

use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteTaskRequest, StartRequest, UpdateTaskRequest, WaitRequest,
};
use containerd_client::tonic::Request;
use containerd_client::with_namespace;

use crate::containerd::Containerd;

/// What a container run through the API did.
#[derive(Debug)]
pub struct ApiRun {
    pub exit_code: u32,
    pub stdout: String,
    pub stderr: String,
}

/// A minimal OCI runtime spec for `args`.
pub fn spec_json(args: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
        },
        "root": {"path": "rootfs"},
        "linux": {},
    }))
    .expect("spec serialises")
}

/// Create container `id` from `image` with `runtime`, run `args` to completion with stdout
/// and stderr in files under `logs`, then delete the task and the container. The error is
/// containerd's message (what a client would print).
pub fn run_image(
    ctd: &Containerd,
    ns: &str,
    image: &str,
    runtime: &str,
    id: &str,
    args: &[&str],
    logs: &Path,
) -> Result<ApiRun, String> {
    let (out, err): (PathBuf, PathBuf) = (
        logs.join(format!("{id}.out")),
        logs.join(format!("{id}.err")),
    );
    let (out_uri, err_uri) = (
        format!("file://{}", out.display()),
        format!("file://{}", err.display()),
    );
    let result = with_channel(ctd, |channel| async move {
        let mut containers = ContainersClient::new(channel.clone());
        let mut tasks = TasksClient::new(channel);
        let container = Container {
            id: id.to_string(),
            image: image.to_string(),
            runtime: Some(Runtime {
                name: runtime.to_string(),
                options: None,
            }),
            spec: Some(prost_types::Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".into(),
                value: spec_json(args),
            }),
            ..Default::default()
        };
        let req = CreateContainerRequest {
            container: Some(container),
        };
        containers
            .create(with_namespace!(req, ns))
            .await
            .map_err(|s| s.message().to_string())?;
        let run = async {
            let req = CreateTaskRequest {
                container_id: id.to_string(),
                stdout: out_uri,
                stderr: err_uri,
                ..Default::default()
            };
            tasks
                .create(with_namespace!(req, ns))
                .await
                .map_err(|s| s.message().to_string())?;
            let req = StartRequest {
                container_id: id.to_string(),
                ..Default::default()
            };
            tasks
                .start(with_namespace!(req, ns))
                .await
                .map_err(|s| s.message().to_string())?;
            let req = WaitRequest {
                container_id: id.to_string(),
                ..Default::default()
            };
            let waited = tasks
                .wait(with_namespace!(req, ns))
                .await
                .map_err(|s| s.message().to_string())?
                .into_inner();
            let req = DeleteTaskRequest {
                container_id: id.to_string(),
            };
            tasks
                .delete(with_namespace!(req, ns))
                .await
                .map_err(|s| s.message().to_string())?;
            Ok::<u32, String>(waited.exit_status)
        }
        .await;
        let req = DeleteContainerRequest { id: id.to_string() };
        let _ = containers.delete(with_namespace!(req, ns)).await;
        run
    });
    let exit_code = result?;
    Ok(ApiRun {
        exit_code,
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
    })
}

/// containerd's Update of task `id` with `resources` (runtime-spec `LinuxResources` JSON),
/// as `ctr` 1.6 has no command for it (CRI's UpdateContainerResources makes this call).
pub fn update_task(
    ctd: &Containerd,
    ns: &str,
    id: &str,
    resources: &serde_json::Value,
) -> Result<(), String> {
    let value = serde_json::to_vec(resources).map_err(|e| e.to_string())?;
    with_channel(ctd, |channel| async move {
        let req = UpdateTaskRequest {
            container_id: id.to_string(),
            resources: Some(prost_types::Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
                value,
            }),
            ..Default::default()
        };
        TasksClient::new(channel)
            .update(with_namespace!(req, ns))
            .await
            .map_err(|s| s.message().to_string())?;
        Ok(())
    })
}

/// What containerd 2.x knows of `runtime` (`io.containerd.wasmtime.v1`): the introspection
/// service's PluginInfo for the task plugin, which runs the shim with `-info`, as CRI does
/// at start (containerd 1.x has no such call).
pub fn runtime_info(
    ctd: &Containerd,
    runtime: &str,
) -> Result<containerd_client::types::RuntimeInfo, String> {
    use containerd_client::services::v1::introspection_client::IntrospectionClient;
    use containerd_client::services::v1::PluginInfoRequest;
    use prost::Message;
    let request = containerd_client::types::RuntimeRequest {
        runtime_path: runtime.to_string(),
        options: None,
    };
    let req = PluginInfoRequest {
        r#type: "io.containerd.runtime.v2".into(),
        id: "task".into(),
        options: Some(prost_types::Any {
            type_url: "containerd.types.RuntimeRequest".into(),
            value: request.encode_to_vec(),
        }),
    };
    with_channel(ctd, |channel| async move {
        let reply = IntrospectionClient::new(channel)
            .plugin_info(req)
            .await
            .map_err(|s| s.message().to_string())?
            .into_inner();
        let extra = reply.extra.ok_or("PluginInfo has no extra data")?;
        containerd_client::types::RuntimeInfo::decode(extra.value.as_slice())
            .map_err(|e| format!("decoding {}: {e}", extra.type_url))
    })
}

/// Run `f` with a channel to `ctd`'s gRPC socket, on a runtime of its own; errors are
/// containerd's messages (what a client would print).
fn with_channel<T, F, Fut>(ctd: &Containerd, f: F) -> Result<T, String>
where
    F: FnOnce(containerd_client::tonic::transport::Channel) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let channel = containerd_client::connect(&ctd.address)
            .await
            .map_err(|e| e.to_string())?;
        f(channel).await
    })
}
