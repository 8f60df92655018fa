//! Test support for certctl's tests: an in-process gateway whose control API certctl's
//! `--url` mode talks to.

use gateway_runtime::{Gateway, GatewayBuilder};

/// A gateway running on a runtime of its own (so the test itself stays synchronous and runs the
/// `certctl` binary), shut down on drop.
pub(crate) struct InProcessGateway {
    runtime: tokio::runtime::Runtime,
    gateway: Option<Gateway>,
    /// The control API's base URL, for `--url`.
    pub(crate) url: String,
}

impl InProcessGateway {
    /// Starts the gateway `setup` prepares; `url` names its control API from the running gateway.
    pub(crate) fn start(
        setup: impl AsyncFnOnce() -> GatewayBuilder,
        url: impl FnOnce(&Gateway) -> String,
    ) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let gateway = runtime.block_on(async { setup().await.start().await.unwrap() });
        let url = url(&gateway);
        Self {
            runtime,
            gateway: Some(gateway),
            url,
        }
    }
}

impl Drop for InProcessGateway {
    fn drop(&mut self) {
        if let Some(gateway) = self.gateway.take() {
            self.runtime
                .block_on(gateway.shutdown_within(std::time::Duration::from_secs(1)));
        }
    }
}
