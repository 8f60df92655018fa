//! Loaded API definitions and routing by host and listen path.

use std::sync::Arc;

use http::Uri;

use crate::config::ApiDefinition;

/// An API ready to serve.
#[derive(Debug)]
pub(crate) struct ApiRoute {
    /// The definition as configured.
    pub(crate) def: ApiDefinition,
    /// `proxy.target_url`, parsed.
    pub(crate) target: Uri,
}

/// Every active API, longest listen path first.
#[derive(Debug, Default)]
pub(crate) struct ApiTable {
    routes: Vec<Arc<ApiRoute>>,
}

impl ApiTable {
    pub(crate) fn new(defs: Vec<ApiDefinition>) -> Self {
        let mut routes: Vec<Arc<ApiRoute>> = defs
            .into_iter()
            .filter(|def| def.active)
            .filter_map(|def| {
                let target = def.proxy.target_url.parse().ok()?;
                Some(Arc::new(ApiRoute { def, target }))
            })
            .collect();
        routes.sort_by(|a, b| {
            b.def
                .proxy
                .listen_path
                .len()
                .cmp(&a.def.proxy.listen_path.len())
        });
        Self { routes }
    }

    /// The API for `host` (lowercase, without port) and `path`: an API bound to the host wins
    /// over one with no domain; the longest listen path wins.
    pub(crate) fn route(&self, host: Option<&str>, path: &str) -> Option<&Arc<ApiRoute>> {
        let matches = |route: &&Arc<ApiRoute>| path.starts_with(&route.def.proxy.listen_path);
        self.routes
            .iter()
            .filter(matches)
            .find(|route| host.is_some_and(|h| route.def.domain.eq_ignore_ascii_case(h)))
            .or_else(|| {
                self.routes
                    .iter()
                    .filter(matches)
                    .find(|route| route.def.domain.is_empty())
            })
    }

    /// Every API.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<ApiRoute>> {
        self.routes.iter()
    }
}
