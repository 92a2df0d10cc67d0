//! A small CRI client for the pod tests and the bench: the calls kubelet makes, over
//! containerd's socket (k8s-cri on tonic), made synchronous, and the pod and container
//! configurations kubelet sends.

use std::future::Future;
use std::path::Path;

use containerd_client::tonic::transport::Channel;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;

use crate::containerd::Containerd;

/// How long one CRI call may take.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// A connected CRI runtime service.
pub struct Cri {
    rt: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

impl Cri {
    pub fn connect(ctd: &Containerd) -> Result<Cri, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let channel = rt
            .block_on(containerd_client::connect(&ctd.address))
            .map_err(|e| e.to_string())?;
        Ok(Cri {
            rt,
            client: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        })
    }

    fn call<T, F: Future<Output = Result<tonic_response::Response<T>, tonic_response::Status>>>(
        &self,
        f: impl FnOnce(RuntimeServiceClient<Channel>) -> F,
    ) -> Result<T, String> {
        self.bounded(f(self.client.clone()))
    }

    /// Run one CRI call to its answer. kubelet bounds its calls too (2 min by default): a
    /// stuck runtime fails the test instead of hanging the suite.
    fn bounded<T>(
        &self,
        call: impl Future<Output = Result<tonic_response::Response<T>, tonic_response::Status>>,
    ) -> Result<T, String> {
        // The timer is made inside the runtime (it needs its reactor).
        match self
            .rt
            .block_on(async { tokio::time::timeout(CALL_TIMEOUT, call).await })
        {
            Ok(r) => r
                .map(|r| r.into_inner())
                .map_err(|s| s.message().to_string()),
            Err(_) => Err(format!("no answer within {CALL_TIMEOUT:?}")),
        }
    }

    pub fn run_pod(&self, config: PodSandboxConfig, handler: &str) -> Result<String, String> {
        let req = RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: handler.to_string(),
        };
        self.call(|mut c| async move { c.run_pod_sandbox(req).await })
            .map(|r| r.pod_sandbox_id)
    }

    pub fn create(
        &self,
        pod: &str,
        config: ContainerConfig,
        pod_config: &PodSandboxConfig,
    ) -> Result<String, String> {
        let req = CreateContainerRequest {
            pod_sandbox_id: pod.to_string(),
            config: Some(config),
            sandbox_config: Some(pod_config.clone()),
        };
        self.call(|mut c| async move { c.create_container(req).await })
            .map(|r| r.container_id)
    }

    pub fn start(&self, id: &str) -> Result<(), String> {
        let req = StartContainerRequest {
            container_id: id.to_string(),
        };
        self.call(|mut c| async move { c.start_container(req).await })
            .map(|_| ())
    }

    pub fn status(&self, id: &str) -> Result<ContainerStatus, String> {
        let req = ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: false,
        };
        self.call(|mut c| async move { c.container_status(req).await })?
            .status
            .ok_or_else(|| format!("no status for {id}"))
    }

    pub fn stats(&self, id: &str) -> Result<ContainerStats, String> {
        let req = ContainerStatsRequest {
            container_id: id.to_string(),
        };
        self.call(|mut c| async move { c.container_stats(req).await })?
            .stats
            .ok_or_else(|| format!("no stats for {id}"))
    }

    pub fn stop(&self, id: &str, timeout: i64) -> Result<(), String> {
        let req = StopContainerRequest {
            container_id: id.to_string(),
            timeout,
        };
        self.call(|mut c| async move { c.stop_container(req).await })
            .map(|_| ())
    }

    pub fn stop_pod(&self, id: &str) -> Result<(), String> {
        let req = StopPodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        self.call(|mut c| async move { c.stop_pod_sandbox(req).await })
            .map(|_| ())
    }

    pub fn remove_pod(&self, id: &str) -> Result<(), String> {
        let req = RemovePodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        self.call(|mut c| async move { c.remove_pod_sandbox(req).await })
            .map(|_| ())
    }

    /// The pod's IP address (PodSandboxStatus), what a Service's endpoints point at.
    pub fn pod_ip(&self, id: &str) -> Result<String, String> {
        let req = PodSandboxStatusRequest {
            pod_sandbox_id: id.to_string(),
            verbose: false,
        };
        self.call(|mut c| async move { c.pod_sandbox_status(req).await })?
            .status
            .and_then(|s| s.network)
            .map(|n| n.ip)
            .filter(|ip| !ip.is_empty())
            .ok_or_else(|| format!("pod {id} has no IP"))
    }

    /// ExecSync (what kubelet's exec probes and `kubectl exec` without a TTY use): exit
    /// code, stdout and stderr of `cmd` run in container `id`.
    pub fn exec_sync(&self, id: &str, cmd: &[&str]) -> Result<(i32, String, String), String> {
        let req = ExecSyncRequest {
            container_id: id.to_string(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 30,
        };
        self.call(|mut c| async move { c.exec_sync(req).await })
            .map(|r| {
                (
                    r.exit_code,
                    String::from_utf8_lossy(&r.stdout).into_owned(),
                    String::from_utf8_lossy(&r.stderr).into_owned(),
                )
            })
    }

    /// Status with its details (what `crictl info` shows): the runtime handlers with their
    /// features, and the `info` map (`config`: the CRI plugin's configuration, as JSON).
    pub fn runtime_status(&self) -> Result<StatusResponse, String> {
        let req = StatusRequest { verbose: true };
        self.call(|mut c| async move { c.status(req).await })
    }

    /// PullImage, as kubelet makes it (with an image pull secret's credentials, if any): the
    /// image's reference by digest.
    pub fn pull_image(&self, image: &str, auth: Option<(&str, &str)>) -> Result<String, String> {
        let req = PullImageRequest {
            image: Some(ImageSpec {
                image: image.to_string(),
                ..Default::default()
            }),
            auth: auth.map(|(u, p)| AuthConfig {
                username: u.to_string(),
                password: p.to_string(),
                ..Default::default()
            }),
            sandbox_config: None,
        };
        let mut images = self.images.clone();
        self.bounded(images.pull_image(req)).map(|r| r.image_ref)
    }

    /// RemoveImage, as kubelet's image garbage collection makes it.
    pub fn remove_image(&self, image: &str) -> Result<(), String> {
        let req = RemoveImageRequest {
            image: Some(ImageSpec {
                image: image.to_string(),
                ..Default::default()
            }),
        };
        let mut images = self.images.clone();
        self.bounded(images.remove_image(req)).map(|_| ())
    }

    pub fn pods(&self) -> Result<Vec<PodSandbox>, String> {
        let req = ListPodSandboxRequest { filter: None };
        self.call(|mut c| async move { c.list_pod_sandbox(req).await })
            .map(|r| r.items)
    }
}

/// kubelet's defaults, for the pod and each container: the pod's network and IPC, a PID
/// namespace per container.
pub fn kubelet_namespaces() -> NamespaceOption {
    NamespaceOption {
        network: 0,
        pid: 1,
        ipc: 0,
        ..Default::default()
    }
}

/// A container of `image` running `command` under a memory limit (0: none), as kubelet
/// configures one.
pub fn container(name: &str, image: &str, command: &[&str], memory: i64) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        command: command.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}.log"),
        linux: Some(LinuxContainerConfig {
            resources: Some(LinuxContainerResources {
                memory_limit_in_bytes: memory,
                ..Default::default()
            }),
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(kubelet_namespaces()),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// A pod named `name` (per engine) with its logs in `logs`, as kubelet configures one.
pub fn pod_config(name: &str, engine: &str, logs: &Path) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: format!("{name}-{engine}"),
            uid: format!("uid-{name}-{engine}"),
            namespace: "wasmlet-e2e".into(),
            attempt: 0,
        }),
        hostname: "wasmlet-pod".into(),
        log_directory: logs.to_string_lossy().into_owned(),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(kubelet_namespaces()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The tonic types k8s-cri's client returns, through containerd-client's tonic.
mod tonic_response {
    pub use containerd_client::tonic::{Response, Status};
}
