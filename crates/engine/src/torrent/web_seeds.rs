//! The torrent's side of its web seeds: starting one task per usable URL once the storage is
//! open, and registering each with the core as a peer without a socket.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use cratetorrent_metainfo::Metainfo;
use cratetorrent_wire::{Extension, Extensions, PeerId};
use tokio::sync::Notify;

use super::{Conn, Torrent};
use crate::core::{Handled, Input, PeerKey, Reject};
use crate::peer::Link;
use crate::web_seed::{self, WebSeedConf, WebSeedHost};

/// Redirects a web seed request may follow.
const MAX_REDIRECTS: u32 = 5;

/// Starts the torrent's web seeds (once: the storage opens once).
pub(super) fn start(torrent: &Rc<Torrent>) {
    let (urls, conf) = {
        let core = torrent.core.borrow();
        let Some(metainfo) = core.metainfo() else {
            return;
        };
        let conf = core.conf();
        let urls: Vec<String> = metainfo
            .url_list()
            .iter()
            .filter(|url| web_seed::is_usable(url))
            .take(conf.max_web_seeds)
            .cloned()
            .collect();
        let seed_conf = WebSeedConf {
            timeout: conf.web_seed_timeout,
            retry: conf.web_seed_retry,
            fetch_size: conf.web_seed_fetch_size,
            max_redirects: MAX_REDIRECTS,
        };
        (urls, seed_conf)
    };
    if urls.is_empty() {
        return;
    }
    let client = torrent.shared.web_seed_client.get_or_init(|| {
        crate::https::client(conf.timeout.min(Duration::from_secs(10)), 2)
            .map_err(|error| tracing::error!(%error, "web seeds unavailable"))
            .ok()
    });
    let Some(client) = client.clone() else {
        return;
    };
    for url in urls {
        let span = tracing::debug_span!(parent: &torrent.span(), "web seed", %url);
        tokio::task::spawn_local(tracing::Instrument::instrument(
            web_seed::run(torrent.clone(), url, client.clone(), conf),
            span,
        ));
    }
}

impl WebSeedHost for Torrent {
    fn join_web_seed(
        self: &Rc<Self>,
        addr: SocketAddr,
        id: PeerId,
    ) -> Result<(PeerKey, Rc<Notify>), Reject> {
        if self.closed.get() {
            return Err(Reject::Paused);
        }
        if !self.shared.session.borrow().has_room() {
            return Err(Reject::TooMany);
        }
        let handled = self.handle(Input::Handshake {
            addr,
            id,
            // A server answers requests and needs nothing else; the fast extension lets it
            // say it has every piece in one message and reject what it cannot serve.
            extensions: Extensions::NONE.with(Extension::Fast),
            outgoing: false,
            link: Link::default(),
        });
        let key = match handled {
            Handled::Admitted(key) => key,
            Handled::Refused(reject) => return Err(reject),
            Handled::Done => return Err(Reject::Paused),
        };
        let bell = Rc::new(Notify::new());
        self.conns.borrow_mut().insert(
            key,
            Conn {
                stream: None,
                writer: bell.clone(),
            },
        );
        self.shared.session.borrow_mut().connection_opened();
        Ok((key, bell))
    }

    fn web_seed_wanted(&self) -> bool {
        self.core.borrow().wants_web_seeds()
    }

    fn web_seed_work(&self) -> Option<Metainfo> {
        let core = self.core.borrow();
        if core.wants_web_seeds() {
            core.metainfo().cloned()
        } else {
            None
        }
    }

    async fn web_seed_changed(&self) {
        if !self.closed.get() {
            self.web_seed_bell.notified().await;
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.get()
    }
}
