//! The API server a fidelity test runs against: devcluster, or the real kube-apiserver of
//! `realcluster`. Tests written once run on both ([`on_both_servers!`]); every difference they
//! find is a devcluster bug, or a limit the README's devcluster section names.

use std::path::Path;

use devcluster::DevCluster;
use realcluster::RealCluster;

pub struct Server {
    client: kube::Client,
    kind: Kind,
}

enum Kind {
    Dev(DevCluster),
    Real(Box<RealCluster>),
}

impl Server {
    pub async fn start_dev() -> Server {
        let cluster = DevCluster::start().await.expect("devcluster starts");
        Server {
            client: cluster.client(),
            kind: Kind::Dev(cluster),
        }
    }

    pub async fn start_real() -> Server {
        let cluster = RealCluster::start()
            .await
            .expect("the real control plane starts");
        Server {
            client: cluster
                .client()
                .await
                .expect("a client of the real API server"),
            kind: Kind::Real(Box::new(cluster)),
        }
    }

    /// A client as the cluster's admin, in namespace `default`.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The devcluster, for tests of what only it does (fault injection and the like).
    pub fn devcluster(&self) -> &DevCluster {
        match &self.kind {
            Kind::Dev(cluster) => cluster,
            Kind::Real(_) => panic!("a devcluster-only test ran against the real API server"),
        }
    }

    pub fn is_real(&self) -> bool {
        matches!(self.kind, Kind::Real(_))
    }

    /// Writes a kubeconfig for kubectl, as the cluster's admin, in namespace `default`.
    pub fn write_kubeconfig(&self, path: &Path) -> anyhow::Result<()> {
        match &self.kind {
            Kind::Dev(cluster) => cluster.write_kubeconfig(path),
            Kind::Real(cluster) => Ok(std::fs::copy(cluster.kubeconfig(), path).map(drop)?),
        }
    }
}

/// `on_both_servers!(a, b)`: each `async fn` named runs on devcluster and on the real API server
/// (see `ephemerator_testkit::on_devcluster_and_real_apiserver`).
macro_rules! on_both_servers {
    ($($test:ident),* $(,)?) => {
        ephemerator_testkit::on_devcluster_and_real_apiserver!(
            dev: crate::common::Server::start_dev().await,
            real: crate::common::Server::start_real().await;
            $($test),*
        );
    };
}
pub(crate) use on_both_servers;
